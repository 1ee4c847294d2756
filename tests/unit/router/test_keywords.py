from casewire_router.domain.keywords import KeywordMatcher, fold


def test_fold_ignores_case_accents_and_arabic_diacritics_and_tatweel() -> None:
    assert fold("ΑΠΟΣΤΟΛΉ") == fold("αποστολη")
    assert fold("Café") == "cafe"
    assert fold("شُكْرًا") == fold("شكرا")
    assert fold("شـــكرا") == fold("شكرا")


def test_fold_keeps_thai_vowel_signs() -> None:
    assert fold("การจัดส่ง") == "การจัดส่ง"


def test_keyword_matches_whole_words_only_in_spaced_scripts() -> None:
    matcher = KeywordMatcher(["ship", "order status"])
    assert matcher.find("Where is my ORDER  STATUS?") == set()  # two spaces: not the phrase
    assert matcher.find("what is my order status?") == {"order status"}
    assert matcher.find("the shipping is late") == set()
    assert matcher.find("did you ship it") == {"ship"}


def test_thai_keyword_matches_inside_unspaced_text() -> None:
    matcher = KeywordMatcher(["การจัดส่ง"])
    assert matcher.find("สอบถามเรื่องการจัดส่งสินค้าค่ะ") == {"การจัดส่ง"}


def test_greek_keyword_matches_without_accents_and_in_capitals() -> None:
    matcher = KeywordMatcher(["αποστολή"])
    assert matcher.find("ΠΟΤΕ ΘΑ ΓΙΝΕΙ Η ΑΠΟΣΤΟΛΗ;") == {"αποστολη"}


def test_arabic_keyword_matches_with_diacritics_and_bidi_marks_in_text() -> None:
    matcher = KeywordMatcher(["حالة الطلب"])
    assert matcher.find("\u200fما هي حالةُ الطلب؟") == {"حالة الطلب"}
    assert matcher.find("حالة الطلبات") == set()


def test_emoji_text_does_not_break_matching() -> None:
    matcher = KeywordMatcher(["refund"])
    assert matcher.find("refund 👍🏻 please") == {"refund"}


def test_matchers_sharing_one_folding_find_what_each_finds_alone() -> None:
    rules = KeywordMatcher(["refund", "αποστολή"])
    crisis = KeywordMatcher(["hacked", "การจัดส่ง"])
    for text in ("REFUND now, I was Hacked", "Η ΑΠΟΣΤΟΛΗ; สอบถามเรื่องการจัดส่งสินค้า"):
        folded = fold(text)
        assert rules.find_folded(folded) == rules.find(text)
        assert crisis.find_folded(folded) == crisis.find(text)
    assert rules.find_folded(fold("REFUND now")) == {"refund"}


def test_fold_ignores_bidi_marks_wherever_they_sit_and_keeps_ascii_as_lowercase() -> None:
    assert fold("\u202bCafe\u0301\u202c") == "cafe"
    assert fold("e\u200f\u0301") == "e"  # a bidi mark between a letter and its accent
    assert fold("Order #123 STATUS") == "order #123 status"
    assert fold("ﬁle Ⅻ") == "file xii"  # NFKC compatibility forms


def test_fold_maps_final_sigma_full_width_letters_and_tonos() -> None:
    assert fold("λογαριασμός") == fold("ΛΟΓΑΡΙΑΣΜΟΣ") == "λογαριασμοσ"
    assert fold("Ｒｅｆｕｎｄ　ＮＯＷ") == "refund now"  # full-width letters and space
    assert fold("ΆΈΉΊΌΎΏ") == "αεηιουω"


def test_whole_word_matching_is_per_occurrence() -> None:
    matcher = KeywordMatcher(["sue"])
    assert matcher.find("an issue") == set()
    assert matcher.find("an issue, so I will sue") == {"sue"}
    assert matcher.find("sue!") == {"sue"}


def test_keywords_that_fold_to_nothing_are_not_added() -> None:
    matcher = KeywordMatcher(["ـــ", "  ", "ok"])
    assert matcher.keywords == {"ok"}


def test_typographic_apostrophes_read_as_the_ascii_one() -> None:
    matcher = KeywordMatcher(["isn't working", "can't log in"])
    assert matcher.find("Uber eats isn’t working 😭") == {"isn't working"}
    assert matcher.find("I can‘t log in") == {"can't log in"}
    assert matcher.find("I canʼt log in") == {"can't log in"}


def test_invisible_characters_do_not_split_a_keyword() -> None:
    matcher = KeywordMatcher(["ระบบล่ม", "outage"])
    assert matcher.find("ระบบ\u200bล่ม อีกแล้ว") == {"ระบบล่ม"}
    assert matcher.find("out\u00adage at the depot") == {"outage"}
    assert matcher.find("out\u200dage") == {"outage"}


def test_thai_sara_e_typed_twice_reads_as_sara_ae() -> None:
    # แย่ (awful) typed เเย่ with two เ, as many Thai keyboards users do
    assert KeywordMatcher(["แย่มาก"]).find("บริการเเย่มาก") == {"แย่มาก"}


def test_a_thai_keyword_is_not_found_after_a_leading_vowel() -> None:
    matcher = KeywordMatcher(["ล่ม"])
    assert matcher.find("ซื้อหนังสือเล่มนี้ได้ที่ไหนคะ") == set()  # เล่ม: a volume
    assert matcher.find("แอปล่มอีกแล้ว") == {"ล่ม"}


def test_a_latin_keyword_next_to_thai_letters_is_a_whole_word() -> None:
    matcher = KeywordMatcher(["shopee"])
    assert matcher.find("สั่งของในshopeeแล้วไม่ได้ของ") == {"shopee"}
    assert matcher.find("shopeefood") == set()
