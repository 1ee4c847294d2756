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
