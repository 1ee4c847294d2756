"""Urgency signals in the five supported languages, the troll heuristic, and the mapping to
P1–P4. Examples are written the way customers write on social media."""

from __future__ import annotations

import pytest
from casewire_router.domain.keywords import fold
from casewire_router.domain.urgency import (
    P1_MIN,
    P2_MIN,
    P3_MIN,
    W_REPEAT_MAX,
    W_REPEAT_PER_CONTACT,
    Assessment,
    UrgencyContext,
    assess,
    crisis_topics,
    default_model,
    priority_for,
    score,
)

from tests.unit.router.factories import message

MODEL = default_model()


def signals(assessment: Assessment) -> dict[str, int]:
    return {signal.name: signal.weight for signal in assessment.urgency.signals}


def detail(assessment: Assessment, name: str) -> str:
    return next(s.detail for s in assessment.urgency.signals if s.name == name)


def private(text: str, **context: int) -> Assessment:
    """A DM: no public-visibility weight, so other signals show on their own."""
    return assess(MODEL, message(text, channel="dm"), context=UrgencyContext(**context))


CRISES = [
    # (language, topic, text)
    ("en", "outage", "is the app down again? can't log in since this morning"),
    ("en", "security", "someone hacked my account and there's an unauthorized charge on my card"),
    ("en", "safety", "the charger caught fire last night, my son got hurt"),
    ("en", "legal", "I've spoken to my lawyer, expect a lawsuit"),
    ("ar", "outage", "التطبيق مش شغال من الصبح"),
    ("ar", "security", "حسابي اتهكر وفي سحب بدون علمي"),
    ("ar", "safety", "الشاحن انفجر وفي دخان في الغرفة"),
    ("ar", "legal", "رح ارفع قضية عليكم عند حماية المستهلك"),
    ("el", "outage", "η εφαρμογή δεν δουλεύει από το πρωί"),
    ("el", "security", "μου χακάραν τον λογαριασμό, είναι απάτη"),
    ("el", "safety", "το κινητό πήρε φωτιά στο κομοδίνο"),
    ("el", "legal", "θα κάνω μήνυση, μίλησα ήδη με δικηγόρο"),
    ("th", "outage", "แอปล่มอีกแล้ว เข้าไม่ได้เลย"),
    ("th", "security", "บัญชีโดนแฮก มีคนขโมยเงินไป"),
    ("th", "safety", "กินแล้วอาหารเป็นพิษ ต้องเข้าโรงพยาบาล"),
    ("th", "legal", "จะแจ้งความและร้องเรียนสคบ"),
    ("es", "outage", "la app está caída, no puedo entrar"),
    ("es", "security", "me hackearon la cuenta, es una estafa"),
    ("es", "safety", "el cargador explotó y hubo un incendio"),
    ("es", "legal", "ya hablé con mi abogado, los voy a demandar"),
]


@pytest.mark.parametrize(("language", "topic", "text"), CRISES)
def test_crisis_vocabulary_names_its_topic_in_every_language(
    language: str, topic: str, text: str
) -> None:
    assessment = private(text)
    assert topic in assessment.crisis_topics, (language, assessment)
    assert f"{topic}:" in detail(assessment, "crisis")
    assert signals(assessment)["crisis"] >= 40
    assert topic in crisis_topics(MODEL, fold(text))


@pytest.mark.parametrize(("language", "topic", "text"), CRISES)
def test_a_public_crisis_is_at_least_p2(language: str, topic: str, text: str) -> None:
    urgency = assess(MODEL, message(text)).urgency
    assert priority_for(urgency.score) in {"P1", "P2"}, (language, urgency)


@pytest.mark.parametrize(
    "text",
    [
        "ซื้อหนังสือเล่มนี้ได้ที่ไหนคะ",  # where can I buy this book (เล่ม: a volume)
        "โปรโมชั่นนี้แหล่มเลย",  # this promo is awesome
        "พัสดุโผล่มาแล้วค่ะ",  # the parcel showed up
    ],
)
def test_thai_words_that_hold_the_letters_of_down_are_no_crisis(text: str) -> None:
    assert not private(text).crisis_topics, text


def test_an_outage_typed_with_a_curly_apostrophe_is_an_outage() -> None:
    assert "outage" in private("Uber eats isn’t working and the app doesn’t load").crisis_topics


def test_several_crisis_topics_weigh_more_than_one_and_are_all_named() -> None:
    one = private("my account was hacked")
    two = private("my account was hacked and now the app is down")
    assert two.crisis_topics == {"security", "outage"}
    assert signals(two)["crisis"] > signals(one)["crisis"]


@pytest.mark.parametrize(
    "text",
    [
        "worst service ever, totally unacceptable",
        "خدمة سيئة وغير مقبول أبدا",
        "απαράδεκτη εξυπηρέτηση, χάλια",
        "บริการแย่มาก ผิดหวังสุดๆ",
        "pésimo servicio, qué vergüenza",
    ],
)
def test_negative_tone_in_every_language(text: str) -> None:
    fired = signals(private(text))
    assert fired.get("negative_tone", 0) >= 15, text
    assert "crisis" not in fired


@pytest.mark.parametrize(
    "text",
    [
        "my flight got delayed and my bag is missing",
        "الطلب ما وصل ولسه مستني",
        "το δέμα δεν ήρθε ακόμα, περιμένω ακόμα",
        "ยังไม่ได้รับของ ส่งช้ามาก",
        "mi pedido no llegó y sigo esperando",
    ],
)
def test_what_went_wrong_is_a_failure_signal_in_every_language(text: str) -> None:
    assert "failure" in signals(private(text)), text


def test_failure_words_are_not_counted_again_inside_a_crisis() -> None:
    fired = signals(private("my flight was cancelled and I'm stranded"))
    assert "crisis" in fired
    assert "failure" not in fired


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("WHERE IS MY PARCEL, I NEED IT TODAY", "capitals"),
        ("ΠΟΥ ΕΙΝΑΙ Η ΠΑΡΑΓΓΕΛΙΑ ΜΟΥ", "capitals"),
        ("وين الطلب!!!", "exclamation marks"),
        ("ξανά τα ίδια!!!", "exclamation marks"),
        ("ของยังไม่มาเลย!!!!", "exclamation marks"),
        ("¡¡¡otra vez lo mismo!!!", "exclamation marks"),
        ("まだ届かない！！！", "exclamation marks"),
        ("ليش كذا؟!؟!", "exclamation marks"),
    ],
)
def test_shouting_by_capitals_or_exclamation_runs_in_any_script(text: str, why: str) -> None:
    assessment = private(text)
    assert "shouting" in signals(assessment), text
    assert detail(assessment, "shouting") == why


@pytest.mark.parametrize(
    "text", ["Where Is My Parcel", "really?? ok!", "OK 👍 FINE", "وين الطلب؟", "สวัสดีค่ะ!"]
)
def test_ordinary_punctuation_and_case_are_not_shouting(text: str) -> None:
    assert "shouting" not in signals(private(text))


def test_public_reach_and_verified_are_weighted_by_visibility_and_audience() -> None:
    text = "hello"
    assert signals(assess(MODEL, message(text, channel="dm"))) == {}
    assert signals(assess(MODEL, message(text))) == {"public": 10}
    medium = assess(MODEL, message(text, followers=25_000))
    large = assess(MODEL, message(text, followers=2_000_000, verified=True))
    assert signals(medium)["reach"] < signals(large)["reach"]
    assert detail(large, "reach") == "2000000 followers"
    assert "verified" in signals(large)
    assert "reach" not in signals(assess(MODEL, message(text, followers=9_999)))


def test_repeated_contact_grows_with_the_count_and_is_capped() -> None:
    weights = [
        signals(private("any news?", recent_contacts=n)).get("repeated_contact", 0)
        for n in range(6)
    ]
    assert weights[0] == 0
    assert weights[1] == W_REPEAT_PER_CONTACT
    assert weights[1] < weights[2] < weights[3]
    assert weights[3] == weights[4] == weights[5] == W_REPEAT_MAX


def test_a_burst_counts_only_for_a_message_on_a_crisis_topic() -> None:
    crisis = "the site is down"
    assert "burst" not in signals(private(crisis, similar_recent=2))
    small = private(crisis, similar_recent=3)
    large = private(crisis, similar_recent=40)
    assert 0 < signals(small)["burst"] < signals(large)["burst"]
    assert "outage" in detail(large, "burst")
    assert "burst" not in signals(private("where is my parcel?", similar_recent=40))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("order #88231 still not here", "reference"),
        ("tracking 1Z999AA10123456784 hasn't moved", "reference"),
        ("UA514 left without us", "flight"),
        ("رحلة 845 تأخرت", "flight"),
        ("η πτήση A3 602 ακυρώθηκε", "flight"),
        ("charged at 10:45pm", "time"),
        ("waiting for 3 hours now", "time"),
        ("من امبارح والنت قاطع", "time"),
        ("δεν έχει σήμα από χθες", "time"),
        ("รอมา 2ชั่วโมงแล้ว", "time"),
        ("sin internet desde ayer", "time"),
        ("they took $49.99 from me", "amount"),
        ("خصموا 200 ريال", "amount"),
        ("πλήρωσα 30€ για τίποτα", "amount"),
        ("โดนหัก 500 บาท", "amount"),
        ("me cobraron 1200 pesos", "amount"),
        ("my iPhone 8 restarts", "product"),
        ("the S9 battery drains", "product"),
        ("I was charged for nothing", "event"),
        ("طلبت من أسبوع", "event"),
        ("η παραγγελία μου", "event"),
        ("สั่งซื้อไปแล้ว", "event"),
        ("mi pedido", "event"),
    ],
)
def test_specifics_by_kind_in_every_language(text: str, kind: str) -> None:
    assessment = private(text)
    assert f"{kind}:" in detail(assessment, "specifics"), (text, assessment)
    assert 0 < signals(assessment)["specifics"] <= 10


def test_thai_laughter_is_not_a_reference_number() -> None:
    assert "specifics" not in signals(private("555555"))


# (language, troll, unhappy customer with specifics and the same hostility)
TROLL_PAIRS = [
    (
        "en",
        "@brand you are all fucking idiots",
        "@brand you fucking idiots charged me $89 twice on 12/03, order #55231",
    ),
    (
        "ar",
        "انتو حمير يلعن ابوكم",
        "انتو حمير، طلبت من يومين ودفعت 300 ريال والطلب ما وصل",
    ),
    (
        "el",
        "είστε όλοι μαλάκες, κλέφτες",
        "μαλάκες, η παραγγελία μου #48213 δεν ήρθε ακόμα από χθες",
    ),
    ("th", "ควาย ไอ้เหี้ย", "ไอ้ควาย สั่งซื้อไปตั้งแต่เมื่อวาน จ่ายไป 500 บาท ของยังไม่ได้รับ"),
    (
        "es",
        "son unos pendejos de mierda",
        "pendejos, me cobraron 1200 pesos ayer y mi pedido no llegó",
    ),
]


@pytest.mark.parametrize(("language", "troll", "customer"), TROLL_PAIRS)
def test_hostility_without_specifics_is_a_likely_troll_and_with_them_a_customer(
    language: str, troll: str, customer: str
) -> None:
    trolling = assess(MODEL, message(troll))
    complaint = assess(MODEL, message(customer))
    assert trolling.troll_likely, (language, trolling)
    assert not complaint.troll_likely, (language, complaint)
    assert "specifics" in signals(complaint)
    assert complaint.urgency.score > trolling.urgency.score


def test_a_troll_is_never_dropped_only_its_hostility_is_not_counted() -> None:
    assessment = assess(MODEL, message("YOU ARE ALL FUCKING IDIOTS!!!", followers=50_000))
    fired = signals(assessment)
    assert assessment.troll_likely
    assert fired["troll_likely"] == -(fired["negative_tone"] + fired["shouting"])
    # Visibility and reach still count: a loud troll with an audience is still seen by someone.
    assert assessment.urgency.score == fired["public"] + fired["reach"]
    assert "specifics" in detail(assessment, "troll_likely")


def test_a_hostile_crisis_report_is_never_discounted_as_trolling() -> None:
    assessment = assess(MODEL, message("you fucking scammers"))
    assert not assessment.troll_likely
    assert "security" in assessment.crisis_topics


def test_long_hostile_text_with_content_is_not_a_troll() -> None:
    text = (
        "honestly this is shit, the new design makes it impossible to find the settings "
        "page and the search does nothing useful anymore"
    )
    assert not private(text).troll_likely


def test_the_score_is_capped_at_100() -> None:
    text = (
        "URGENT!!! the app is DOWN, my account was hacked, the phone caught fire and my "
        "lawyer will sue, order #12345, charged $500 yesterday, worst service, unacceptable"
    )
    assessment = assess(
        MODEL,
        message(text, followers=1_000_000, verified=True),
        context=UrgencyContext(recent_contacts=5, similar_recent=50),
    )
    assert sum(signals(assessment).values()) > 100
    assert assessment.urgency.score == 100
    assert priority_for(assessment.urgency.score) == "P1"


@pytest.mark.parametrize(
    ("value", "priority"),
    [
        (100, "P1"),
        (P1_MIN, "P1"),
        (P1_MIN - 1, "P2"),
        (P2_MIN, "P2"),
        (P2_MIN - 1, "P3"),
        (P3_MIN, "P3"),
        (P3_MIN - 1, "P4"),
        (0, "P4"),
    ],
)
def test_scores_map_to_priorities(value: int, priority: str) -> None:
    assert priority_for(value) == priority


def test_the_same_inputs_always_give_the_same_assessment() -> None:
    msg = message("الطلب ما وصل!!! طلبت من يومين", followers=12_000)
    context = UrgencyContext(recent_contacts=2)
    first = assess(MODEL, msg, context=context)
    assert all(assess(MODEL, msg, context=context) == first for _ in range(3))
    assert assess(default_model(), msg, fold(msg.text), context) == first
    assert score(MODEL, msg) == assess(MODEL, msg).urgency


def test_the_rules_file_extends_the_vocabularies() -> None:
    model = default_model(
        extra_crisis={"recall": ["product recall"], "safety": ["smells like burning"]},
        extra_negative=["meh"],
    )
    recall = assess(model, message("is there a product recall on this kettle?", channel="dm"))
    assert recall.crisis_topics == {"recall"}
    burning = assess(model, message("it smells like burning", channel="dm"))
    assert burning.crisis_topics == {"safety"}
    assert "negative_tone" in signals(assess(model, message("meh", channel="dm")))
    assert "negative_tone" not in signals(assess(MODEL, message("meh", channel="dm")))


def test_a_misshapen_extension_or_context_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="list"):
        default_model(extra_crisis={"outage": "down"})
    with pytest.raises(TypeError, match="list"):
        default_model(extra_negative="meh")
    with pytest.raises(ValueError, match="negative"):
        UrgencyContext(recent_contacts=-1)
