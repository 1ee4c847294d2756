"""Urgency: a 0–100 score from explainable, weighted signals, mapped to P1–P4.

Every signal that fires is kept with its weight and a detail a care lead can read, so a
priority can always be explained. `assess` also tells the caller which crisis topics a
message is about (to group incidents) and whether it looks like trolling rather than an
unhappy customer; a likely troll is still routed, only its hostility is not counted.
See docs/urgency.md for the weights, the troll heuristic and the measured evaluation.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from casewire_common.events import Priority, Urgency, UrgencySignal
from casewire_common.messages import CanonicalMessage

from casewire_router.domain import sentiment as sentiment_model
from casewire_router.domain.keywords import TaggedKeywordMatcher, fold
from casewire_router.domain.sentiment import Sentiment, SentimentModel, classify

# Crisis vocabulary by topic, in English, Arabic (MSA and dialect), Greek, Thai and Spanish.
# Thai keywords match inside words (Thai has no spaces), so short ones that occur inside
# common words (ศาล in ศาลา, สัด in สัดส่วน) are written as longer phrases.
CRISIS_VOCABULARY: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "outage": (
        "outage", "is down", "are down", "down again", "app down", "site down",
        "website down", "server down", "servers down", "service down", "not working",
        "isn't working", "isnt working", "doesn't work", "doesnt work", "does not work",
        "stopped working", "won't load", "wont load", "can't log in", "cant log in",
        "cannot log in", "can't login", "cant login", "unable to log in", "locked out",
        "crash", "crashed", "crashes", "crashing", "keeps freezing", "unresponsive",
        "black screen", "no signal", "no internet", "error 500",
        # Arabic
        "عطل", "معطل", "عطلان", "خربان", "لا يعمل", "ما يشتغل", "مايشتغل", "مش شغال",
        "مو شغال", "مش بيشتغل", "ما بيشتغل", "التطبيق واقف", "الموقع واقف", "الخدمة متوقفة",
        "انقطاع", "النت قاطع", "مقطوع", "توقف", "متوقف", "ما يفتح", "مش بيفتح",
        "ما اقدر ادخل", "مش قادر ادخل", "لا أستطيع الدخول", "بيهنج", "يهنج", "معلق",
        # Greek
        "βλάβη", "δεν λειτουργεί", "δεν δουλεύει", "δε δουλεύει", "δεν ανοίγει", "έπεσε",
        "έπεσε το σύστημα", "πεσμένο", "πεσμένη", "πεσμένο το σύστημα", "εκτός λειτουργίας",
        "διακοπή", "διακοπή ρεύματος", "κόλλησε", "κολλάει", "κρασάρει", "κράσαρε",
        "δεν μπορώ να συνδεθώ", "δεν έχω σήμα", "χωρίς ίντερνετ", "χωρίς σήμα",
        # Thai ("ล่ม" alone is also in แหล่ม "awesome" and โผล่มา "showed up": only with what
        # went down)
        "ระบบล่ม", "แอปล่ม", "แอพล่ม", "เว็บล่ม", "เว็บไซต์ล่ม", "เซิร์ฟเวอร์ล่ม", "เซิฟล่ม",
        "ล่มอีกแล้ว", "ล่มบ่อย", "ล่มตลอด", "ใช้งานไม่ได้", "ใช้ไม่ได้", "เข้าไม่ได้", "ล็อกอินไม่ได้",
        "เข้าระบบไม่ได้", "เน็ตหลุด", "เน็ตล่ม", "ไม่มีสัญญาณ", "สัญญาณหาย", "แอปค้าง",
        "เครื่องค้าง", "จอค้าง", "เด้งออก", "โหลดไม่ขึ้น", "ไฟดับ",
        # Spanish
        "caído", "caída", "se cayó", "está caído", "no funciona", "no sirve",
        "dejó de funcionar", "no carga", "no puedo entrar", "no me deja entrar",
        "no puedo iniciar sesión", "sin servicio", "sin internet", "sin señal", "se colgó",
        "se congela", "se traba",
    ),
    "security": (
        "hacked", "hacker", "hackers", "fraud", "fraudulent", "scam", "scammed", "scammer",
        "scammers", "stolen", "stole", "unauthorized", "unauthorised", "unauthorized charge",
        "didn't authorize", "identity theft", "phishing", "data breach", "breach", "leaked",
        "compromised", "someone logged into my account", "someone accessed my account",
        # Arabic
        "اختراق", "مخترق", "تهكير", "اتهكر", "انهكر", "تهكر", "احتيال", "نصب", "نصاب",
        "نصابين", "سرقة", "مسروق", "انسرق", "اتسرق", "سرقوا", "غير مصرح", "بدون علمي",
        "تسريب", "تصيد",
        # Greek
        "απάτη", "απατεώνες", "κλοπή", "κλεμμένο", "κλεμμένη", "έκλεψαν", "χάκαραν",
        "χακαρίστηκε", "χακαρισμένος", "παραβίαση", "υποκλοπή", "μη εξουσιοδοτημένη",
        "χωρίς την έγκρισή μου",
        # Thai
        "โดนแฮก", "ถูกแฮก", "โดนแฮ็ก", "แฮ็ก", "แฮก", "หลอกลวง", "โกง", "โดนโกง",
        "มิจฉาชีพ", "ขโมย", "โดนขโมย", "โจรกรรม", "ข้อมูลรั่ว", "ข้อมูลหลุด",
        "ตัดเงินโดยไม่ได้", "เงินหายจากบัญชี",
        # Spanish
        "fraude", "estafa", "estafaron", "me estafaron", "estafadores", "robo", "robado",
        "robada", "me robaron", "hackeado", "hackeada", "me hackearon", "jaquearon",
        "suplantación", "cargo no autorizado", "cargos no reconocidos", "no reconozco",
        "filtración",
    ),
    "safety": (
        "caught fire", "on fire", "fire hazard", "burst into flames", "flames", "smoke",
        "exploded", "explosion", "burned", "burnt", "electric shock", "danger", "dangerous",
        "unsafe", "emergency", "injury", "injured", "got hurt", "was hurt", "bleeding",
        "hospital", "ambulance", "food poisoning", "poisoned", "allergic reaction",
        "overheating", "swollen battery", "battery swollen", "gas leak", "carbon monoxide",
        # Arabic
        "حريق", "احترق", "اشتعل", "انفجر", "انفجار", "دخان", "إصابة", "انصاب", "مجروح",
        "خطر", "طوارئ", "إسعاف", "مستشفى", "المستشفى", "تسمم", "تسمم غذائي", "حساسية",
        "ماس كهربائي", "صعق", "تسرب غاز",
        # Greek
        "φωτιά", "πήρε φωτιά", "έπιασε φωτιά", "καπνός", "έκρηξη", "εξερράγη", "κάηκε",
        "τραυματισμός", "τραυματίστηκα", "τραυματίστηκε", "κίνδυνος", "επικίνδυνο",
        "επικίνδυνη", "έκτακτη ανάγκη", "νοσοκομείο", "ασθενοφόρο", "δηλητηρίαση",
        "τροφική δηλητηρίαση", "αλλεργική αντίδραση", "ηλεκτροπληξία", "διαρροή αερίου",
        # Thai
        "ไฟไหม้", "ไฟลุก", "แบตระเบิด", "เครื่องระเบิด", "ควันขึ้น", "มีควัน",
        "ได้รับบาดเจ็บ", "เจ็บตัว", "อันตรายมาก", "เป็นอันตราย", "เหตุฉุกเฉิน",
        "เข้าโรงพยาบาล", "ส่งโรงพยาบาล", "นอนโรงพยาบาล", "อาหารเป็นพิษ", "ท้องเสีย",
        "ไฟดูด", "ไฟช็อต", "แก๊สรั่ว", "เลือดออก", "แพ้อย่างรุนแรง",
        # Spanish
        "incendio", "se incendió", "fuego", "humo", "explotó", "explosión", "herido", "herida",
        "lesión", "me lastimé", "peligro", "peligroso", "emergencia", "hospital", "ambulancia",
        "intoxicación", "intoxicación alimentaria", "reacción alérgica",
        "descarga eléctrica", "fuga de gas", "se quemó",
    ),
    "legal": (
        "lawyer", "lawyers", "attorney", "lawsuit", "sue", "suing", "sued", "legal action",
        "class action", "small claims", "regulator", "ombudsman", "ftc", "fcc", "dot complaint",
        "consumer protection", "better business bureau", "bbb", "trading standards",
        "chargeback", "report you to",
        # Arabic
        "محامي", "محامى", "محامييني", "قضية", "رفع قضية", "دعوى", "شكوى رسمية", "محكمة",
        "المحكمة", "حماية المستهلك", "وزارة التجارة", "هقاضيكم", "سأقاضيكم", "راح اشتكي",
        # Greek
        "δικηγόρο", "δικηγόρος", "δικηγόρου", "μήνυση", "αγωγή", "δικαστήριο", "δικαστήρια",
        "συνήγορο του καταναλωτή", "συνήγορος του καταναλωτή", "καταγγελία", "εεττ",
        "εισαγγελέα", "νομικά μέτρα",
        # Thai
        "ทนาย", "ฟ้องร้อง", "ฟ้องศาล", "ขึ้นศาล", "แจ้งความ", "สคบ", "ร้องเรียน",
        "ดำเนินคดี", "กสทช",
        # Spanish
        "abogado", "abogados", "demanda", "demandar", "los voy a demandar", "denuncia",
        "denunciar", "profeco", "tribunal", "juicio", "acción legal", "acciones legales",
        "defensa del consumidor",
    ),
    # The customer's trip or order has broken down: someone is stranded or lost property.
    "disruption": (
        "stranded", "cancelled my flight", "canceled my flight", "flight cancelled",
        "flight canceled", "cancelled flight", "canceled flight", "flight was cancelled",
        "flight was canceled", "missed my connection", "missed connection",
        "missed my flight", "lost luggage", "lost my luggage", "lost bag", "lost my bag",
        "lost bags", "lost baggage", "lost my baggage", "damaged luggage", "damaged bag",
        "bag was damaged", "delayed for hours", "hours delayed", "still no bag",
        "lost package", "package lost",
        # Arabic
        "الرحلة اتلغت", "ألغوا الرحلة", "الغوا رحلتي", "إلغاء الرحلة", "فاتتني الرحلة",
        "عالق", "عالقين", "ضاعت الشنطة", "شنطتي ضاعت", "ضياع الأمتعة", "الأمتعة مفقودة",
        "الشحنة ضاعت",
        # Greek
        "ακυρώθηκε η πτήση", "ακύρωσαν την πτήση", "ακύρωση πτήσης", "έχασα την ανταπόκριση",
        "εγκλωβισμένοι", "εγκλωβισμένος", "χάθηκε η βαλίτσα", "χάσατε τη βαλίτσα",
        "χαμένη αποσκευή", "χαμένες αποσκευές", "το δέμα χάθηκε",
        # Thai
        "เที่ยวบินยกเลิก", "ยกเลิกเที่ยวบิน", "ตกเครื่อง", "กระเป๋าหาย", "สัมภาระหาย",
        "กระเป๋าเสียหาย", "พัสดุหาย", "ของหาย", "ติดค้างที่สนามบิน",
        # Spanish
        "cancelaron mi vuelo", "vuelo cancelado", "perdí mi conexión", "perdí la conexión",
        "varado", "varados", "maleta perdida", "perdieron mi maleta", "equipaje perdido",
        "maleta dañada", "paquete perdido",
    ),
    # Money taken wrongly (fraud is "security").
    "billing": (
        "charged twice", "double charged", "charged me twice", "overcharged",
        "still being charged", "still charged", "charged again", "wrong charge",
        # Arabic
        "خصم مرتين", "اتخصم مرتين", "سحبوا مرتين", "خصم زيادة",
        # Greek
        "χρεώθηκα δύο φορές", "διπλή χρέωση", "λάθος χρέωση", "υπερχρέωση",
        # Thai
        "ตัดเงินซ้ำ", "หักเงินซ้ำ", "โดนหักเงินสองครั้ง", "เก็บเงินซ้ำ",
        # Spanish
        "cobro doble", "me cobraron dos veces", "doble cargo", "cobro indebido",
        "me siguen cobrando",
    ),
})  # fmt: skip

# Topics differ in how much they weigh: a danger to people outranks a billing mistake.
# A topic the rules file adds weighs W_CRISIS_DEFAULT.
CRISIS_TOPIC_WEIGHTS: Mapping[str, int] = MappingProxyType({
    "safety": 50, "security": 45, "outage": 45, "legal": 40, "disruption": 40, "billing": 35,
})  # fmt: skip
W_CRISIS_DEFAULT = 40
W_CRISIS_EXTRA_TOPIC = 5  # per further topic in the same message

NEGATIVE_WORDS = (
    "terrible", "worst", "awful", "horrible", "unacceptable", "angry", "furious", "ridiculous",
    "disgusting", "useless", "disappointed", "disappointing", "never again", "hate",
    "no answer", "sucks", "pathetic", "a joke", "fed up", "sick of",
    "frustrated", "frustrating", "annoyed", "annoying", "upset", "shameful", "appalling",
    "rude", "incompetent", "unprofessional", "nightmare", "disaster", "#fail", "epic fail",
    "not happy", "unhappy", "no help", "inexcusable", "poor service", "bad service",
    "horrible service", "customer service sucks", "ugh", "smh", "worst experience",
    "😡", "🤬", "😤", "😠", "👎",
    # Arabic
    "سيء", "سيئ", "أسوأ", "زفت", "غاضب", "مستاء", "زعلان", "غير مقبول", "مو مقبول",
    "مش معقول", "حرام عليكم", "مهزلة", "فاشل", "فاشلين", "خدمة سيئة", "محد يرد",
    "ولا حد بيرد", "ما في حد يرد", "قرف", "مقرف", "للأسف", "تعبنا", "خايس",
    # Greek
    "απαράδεκτο", "απαράδεκτοι", "απαράδεκτη", "χειρότερη", "χειρότερο", "θυμωμένος",
    "θυμωμένη", "απογοητευμένος", "απογοητευμένη", "απογοήτευση", "άθλιο", "άθλια", "χάλια",
    "αίσχος", "ντροπή", "κοροϊδία", "εμπαιγμός", "τραγικό", "τραγική εξυπηρέτηση",
    "δεν απαντάει κανείς", "βαρέθηκα", "σιχάθηκα",
    # Thai
    "แย่", "แย่มาก", "แย่ที่สุด", "ผิดหวัง", "น่าผิดหวัง", "โมโห", "ห่วย", "เซ็ง",
    "หงุดหงิด", "ไม่พอใจ", "โกรธ", "เสียความรู้สึก", "บริการแย่", "ไม่ประทับใจ",
    "ไม่โอเค", "เสียดายเงิน", "ไม่คุ้ม", "รอนาน", "ช้ามาก", "ไม่ไหว", "เบื่อ", "ไม่อร่อย",
    "ไม่ดีเลย", "แย่สุด",
    # Spanish
    "pésimo", "pésima", "peor", "inaceptable", "enojado", "enojada", "molesto", "molesta",
    "decepcionado", "decepcionada", "vergüenza", "un asco", "harto", "harta", "indignado",
    "indignante", "nadie responde", "nadie contesta", "mal servicio", "lamentable",
    "ridículo",
)  # fmt: skip

# Insults and profanity (and a few slurs) a hostile author uses. They count as negative tone;
# with no specifics and little else said they mark a likely troll.
HOSTILE_WORDS = (
    "fuck", "fucking", "fucked", "fuckin", "f*ck", "f*cking", "fck", "fk", "wtf", "stfu",
    "shit", "shitty", "bullshit", "piece of shit", "crap", "crappy", "asshole", "assholes",
    "bitch", "bitches", "bastard", "bastards", "idiot", "idiots", "moron", "morons",
    "stupid", "dumb", "dumbass", "retard", "retarded", "scum", "scumbag", "scumbags",
    "trash", "garbage", "clowns", "losers", "go to hell", "screw you", "shut up",
    "dickhead", "dickheads", "cunt", "cunts", "motherfucker", "motherfuckers", "kys",
    "kill yourself",
    # Arabic
    "حمار", "حمير", "غبي", "أغبياء", "اغبياء", "كلب", "كلاب", "حقير", "حقيرين", "حرامية",
    "زبالة", "وسخ", "وسخين", "تفو", "تف عليكم", "يلعن", "الله يلعنكم", "لعنة", "منيك",
    "شرموط", "شراميط", "كس امك", "خرا", "تبا لكم", "قذر", "قذرين", "خنزير", "حيوانات",
    # Greek
    "μαλάκα", "μαλάκες", "μαλακία", "μαλακίες", "γαμώ", "γαμώτο", "γαμημένο", "γαμημένη",
    "γαμιέστε", "άντε γαμηθείτε", "σκατά", "ηλίθιοι", "ηλίθιε", "βλάκες", "βλάκα", "κλέφτες",
    "αλήτες", "καραγκιόζηδες", "κωλοεταιρεία", "πούστηδες",
    # Thai
    "ควาย", "เหี้ย", "ไอ้สัส", "ไอ้สัด", "ไอ้เหี้ย", "ไอ้ควาย", "ระยำ", "ชิบหาย", "เชี่ย",
    "โง่", "ส้นตีน", "แม่ง", "เฮงซวย", "ตอแหล", "สถุน", "อีดอก", "พ่อมึงตาย",
    # Spanish
    "mierda", "puta", "puto", "putos", "pinche", "pinches", "cabrón", "cabrones", "pendejo",
    "pendejos", "idiota", "idiotas", "imbécil", "imbéciles", "estúpido", "estúpidos",
    "basura", "ladrones", "rateros", "hijos de puta", "hijo de puta", "hdp", "chingada",
    "vete a la mierda", "joder", "coño", "gilipollas", "malditos", "culeros", "maricones",
)  # fmt: skip

# What the customer did or what was done to them, and the references a customer with a real
# problem gives (neutral facts; what went wrong is in FAILURE_WORDS).
EVENT_WORDS = (
    "charged", "was charged", "delivered", "refund", "refunded", "returned", "ordered",
    "my order", "booked", "rebooked", "arrived", "received", "on hold", "waiting for",
    "since yesterday", "tracking", "tracking number", "order number", "booking",
    "reservation", "confirmation number", "case number", "receipt", "invoice",
    "after the update", "updated", "deleted", "reset", "billed", "subscription",
    "replacement", "package", "parcel", "my flight", "my bag", "my luggage",
    # Arabic
    "طلبت", "طلبي", "الطلب", "رقم الطلب", "اتخصم", "تم خصم", "خصم", "سحبوا", "إلغاء",
    "الغاء", "وصلني", "استرجاع", "استرداد", "فاتورة", "حجز", "حجزي", "الشحنة",
    "رقم التتبع", "الطرد", "اشتراك", "رحلتي", "شنطتي",
    # Greek
    "χρεώθηκα", "χρέωση", "με χρέωσαν", "παραγγελία", "παραγγελίας", "ακύρωση",
    "επιστροφή χρημάτων", "παραδόθηκε", "κράτηση", "απόδειξη", "τιμολόγιο", "δέμα",
    "κωδικός αποστολής", "συνδρομή", "η πτήση μου", "η βαλίτσα μου",
    # Thai
    "สั่งซื้อ", "สั่งของ", "ออเดอร์", "เลขพัสดุ", "พัสดุ", "คืนเงิน", "โดนหักเงิน",
    "หักเงิน", "ตัดเงิน", "การจอง", "จองไว้", "ใบเสร็จ", "ใบแจ้งหนี้", "สมัครไว้",
    "เติมเงิน", "โอนเงิน",
    # Spanish
    "me cobraron", "cobro", "cobraron", "pedido", "mi pedido", "número de pedido",
    "reembolso", "devolución", "entregado", "entregaron", "reserva", "factura", "paquete",
    "número de seguimiento", "suscripción", "mi vuelo", "mi maleta",
)  # fmt: skip

# What went wrong for this customer: the heart of an unhappy customer's message.
FAILURE_WORDS = (
    "delay", "delayed", "delays", "cancelled", "canceled", "cancellation", "stuck",
    "missing", "lost", "broken", "damaged", "not delivered", "wasn't delivered",
    "didn't arrive", "hasn't arrived", "has not arrived", "never arrived", "never came",
    "never received",
    "not received",
    "haven't received", "still haven't", "still no", "still not", "still waiting",
    "no refund", "won't refund", "refused", "denied", "declined", "on hold for", "hung up",
    "no one answers", "nobody answers", "can't get through", "can't reach", "cant reach",
    "can't change", "cannot change", "can't rebook", "won't let me", "failed", "error",
    "glitch", "glitches", "bug", "freezes", "freezing", "frozen", "keeps restarting",
    "won't turn on", "wont turn on", "drains", "draining", "wrong item", "wrong order",
    "overbooked", "bumped", "missed", "late", "no response", "no reply",
    # Arabic
    "تأخير", "تأخرت", "تأخر", "متأخر", "اتأخر", "ألغيت", "اتلغت", "اتلغى", "انلغى",
    "ملغي", "ضاع", "ضايع", "ضاعت", "مفقود", "مكسور", "تالف", "ما وصل", "ماوصل", "موصلش",
    "لم يصل", "ما وصلني", "لم أستلم", "ما استلمت", "لسه مستني", "لسا ناطر", "لسه ما",
    "ما رجعوا فلوسي", "رفضوا", "مرفوض", "علقت", "خطأ", "فشل", "ما حد رد", "محدش رد",
    # Greek
    "καθυστέρηση", "καθυστερεί", "καθυστέρησε", "ακυρώθηκε", "ακύρωσαν", "χάθηκε",
    "χαμένο", "σπασμένο", "χαλασμένο", "χάλασε", "δεν ήρθε", "δεν ήρθε ποτέ", "δεν έχει έρθει",
    "δεν παρέλαβα", "δεν έχω παραλάβει", "ακόμα περιμένω", "περιμένω ακόμα",
    "δεν μου επέστρεψαν", "απορρίφθηκε", "σφάλμα", "κόλλησα", "κανείς δεν απαντά",
    # Thai
    "ดีเลย์", "ล่าช้า", "ส่งช้า", "ส่งผิด", "โดนยกเลิก", "ถูกยกเลิก", "ของไม่ถึง",
    "ยังไม่ได้รับ", "ไม่ได้รับของ", "ยังไม่ได้ของ", "ของเสีย", "ชำรุด", "พัง",
    "ยังไม่คืนเงิน", "ไม่คืนเงิน", "ไม่ได้เงินคืน", "ติดต่อไม่ได้", "โทรไม่ติด",
    "ไม่มีคนรับสาย", "ไม่ตอบ", "ไม่มีใครตอบ", "ขึ้นerror", "ผิดพลาด", "รอมา",
    # Spanish
    "retrasado", "retraso", "demorado", "demora", "cancelado", "cancelaron", "perdido",
    "perdieron", "roto", "dañado", "no llegó", "nunca llegó", "no ha llegado", "no me llegó",
    "sigo esperando", "todavía espero", "no me han devuelto", "rechazado", "rechazaron",
    "error", "atascado", "nadie me responde",
)  # fmt: skip

# When, and for how long: words and unit names (after a number) in the five languages.
TIME_WORDS = (
    "yesterday", "today", "this morning", "last night", "tonight", "tomorrow", "since",
    "for hours", "for days", "all day", "last week",
    "أمس", "امبارح", "البارحة", "من امبارح", "منذ", "من يومين", "اليوم", "الصبح",
    "χθες", "χτες", "από χθες", "σήμερα", "εδώ και", "απόψε", "αύριο",
    "เมื่อวาน", "ตั้งแต่", "วันนี้", "เมื่อคืน", "เมื่อเช้า", "พรุ่งนี้",
    "ayer", "desde ayer", "hoy", "anoche", "esta mañana", "desde hace", "mañana",
)  # fmt: skip
_TIME_UNITS = (
    r"min|mins|minutes?|hours?|hrs?|days?|weeks?|months?"
    r"|ساعة|ساعات|دقيقة|دقائق|يوم|أيام|ايام|أسبوع|شهر"
    r"|λεπτά|ώρα|ώρες|μέρα|μέρες|ημέρες|εβδομάδα|μήνα|μήνες"
    r"|minutos?|horas?|d[ií]as?|semanas?|mes|meses"
)
_THAI_TIME_UNITS = "นาที|ชั่วโมง|ชม|วัน|อาทิตย์|สัปดาห์|เดือน"
_CURRENCY_NAMES = (
    r"usd|eur|gbp|dollars?|bucks|euros?|pounds?|pesos?|mxn|baht|thb|sar|aed|egp"
    r"|ευρώ|บาท|ريال|درهم|جنيه|دينار"
)

W_FAILURE = 25
W_NEGATIVE = 15
W_NEGATIVE_MILD = 5  # negative by the model alone, and not clearly (score above -0.5)
NEGATIVE_CLEAR_SCORE = -0.5
W_NEGATIVE_STRONG = 20  # two or more distinct negative or hostile terms, or a strong score
NEGATIVE_STRONG_SCORE = -0.6  # a sentiment score this low (or lower) is strongly negative
W_PUBLIC = 10
W_REACH_LARGE = 20
W_REACH_MEDIUM = 10
REACH_LARGE = 100_000
REACH_MEDIUM = 10_000
W_VERIFIED = 5
W_SHOUTING = 10
W_REPEAT_PER_CONTACT = 7
W_REPEAT_MAX = 21
W_BURST = 10
W_BURST_LARGE = 20
BURST_MIN = 3  # other recent messages on the same crisis topic
BURST_LARGE = 10
W_SPECIFICS = 5
W_SPECIFICS_SEVERAL = 10  # two or more kinds of specifics
TROLL_MAX_LETTERS = 80  # "little content": letters, mentions and links left out

P1_MIN = 70
P2_MIN = 40
P3_MIN = 25


# The vocabularies, by their tag in `UrgencyModel.vocabularies`.
CRISIS = "crisis"
NEGATIVE = "negative"
HOSTILE = "hostile"
FAILURE = "failure"
EVENT = "event"
TIME = "time"


@dataclass(frozen=True)
class UrgencyModel:
    """The vocabularies, built once into one automaton: one pass over a text finds the words
    of all of them, and costs the same however many words they hold."""

    vocabularies: TaggedKeywordMatcher  # tagged CRISIS, NEGATIVE, HOSTILE, FAILURE, EVENT, TIME
    crisis_topics: Mapping[str, frozenset[str]]  # folded crisis keyword → its topics
    topic_weights: Mapping[str, int]
    sentiment: SentimentModel  # the tone of a message, which the negative-tone signal reads


@dataclass(frozen=True)
class TextReading:
    """What the vocabularies found in a folded text, mentions and links left out: read once
    per message, for its crisis topics (incidents) and its urgency alike."""

    content: str  # the folded text without mentions and links
    found: Mapping[str, set[str]]  # words found, by vocabulary tag
    crisis_topics: frozenset[str]
    # The tone: the same reading for the case's sentiment and the negative-tone signal.
    sentiment: Sentiment

    def words(self, tag: str) -> set[str]:
        return self.found.get(tag, set())


@dataclass(frozen=True)
class UrgencyContext:
    """What the caller knows from its database about the message's surroundings."""

    recent_contacts: int = 0  # the same customer's earlier contacts within 24 h
    similar_recent: int = 0  # other recent messages on the same crisis topic (a burst)

    def __post_init__(self) -> None:
        if self.recent_contacts < 0 or self.similar_recent < 0:
            raise ValueError(f"counts must not be negative: {self}")


@dataclass(frozen=True)
class Assessment:
    """The urgency with its signals, what the caller needs to group incidents, and whether
    the author looks like a troll (the router tags the case; it never drops it)."""

    urgency: Urgency
    crisis_topics: frozenset[str]  # for grouping messages into incidents
    troll_likely: bool


def default_model(
    extra_crisis: Mapping[str, Sequence[str]] = MappingProxyType({}),
    extra_negative: Sequence[str] = (),
) -> UrgencyModel:
    """The built-in vocabularies plus the rules file's `urgency:` section: crisis words by
    topic (a new topic weighs W_CRISIS_DEFAULT) and negative words."""
    topics_of: dict[str, set[str]] = {}
    for vocabulary in (CRISIS_VOCABULARY, extra_crisis):
        for topic, words in vocabulary.items():
            if isinstance(words, str):
                raise TypeError(f"crisis words of {topic!r} must be a list, not a string")
            for word in words:
                folded = fold(word).strip()
                if folded:
                    topics_of.setdefault(folded, set()).add(topic)
    weights = {topic: W_CRISIS_DEFAULT for topic in extra_crisis}
    weights.update(CRISIS_TOPIC_WEIGHTS)
    if isinstance(extra_negative, str):
        raise TypeError("negative words must be a list, not a string")
    return UrgencyModel(
        vocabularies=TaggedKeywordMatcher(
            {
                CRISIS: topics_of,
                NEGATIVE: (*NEGATIVE_WORDS, *extra_negative),
                HOSTILE: HOSTILE_WORDS,
                FAILURE: FAILURE_WORDS,
                EVENT: EVENT_WORDS,
                TIME: TIME_WORDS,
            }
        ),
        crisis_topics=MappingProxyType({word: frozenset(t) for word, t in topics_of.items()}),
        topic_weights=MappingProxyType(weights),
        sentiment=sentiment_model.default_model(),
    )


_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_CAPITALS = string.ascii_uppercase.encode()
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Three or more exclamation marks (ASCII, full-width, Spanish inverted), possibly mixed with
# question marks (ASCII, full-width, Arabic): "!!!", "！！！", "?!?!", "؟!!".
_EXCLAMATION_RUN = re.compile(r"(?=[!！?？؟¡]*[!！¡])[!！?？؟¡]{3,}")


def _shouting(text: str) -> str | None:
    """Why the text shouts: mostly capitals (among letters that have a case), or a run of
    exclamation marks; None if it does not."""
    if _EXCLAMATION_RUN.search(text):
        return "exclamation marks"
    # ASCII letters are counted by deleting them (C speed); only the rest is looked at in turn.
    ascii_text = text.encode("ascii", "ignore")
    letters = len(ascii_text) - len(ascii_text.translate(None, _ASCII_LETTERS))
    capitals = len(ascii_text) - len(ascii_text.translate(None, _ASCII_CAPITALS))
    for char in _NON_ASCII.findall(text):
        if char.isalpha() and char.lower() != char.upper():
            letters += 1
            capitals += char.isupper()
    if letters >= 10 and capitals / letters >= 0.6:
        return "capitals"
    return None


def _folded_pattern(pattern: str) -> re.Pattern[str]:
    """A pattern searched in folded text, itself folded (accents and hamza go) so that it
    is written naturally."""
    return re.compile(fold(pattern))


_MENTIONS_AND_LINKS = re.compile(r"@\w+|https?://\S+|www\.\S+")
_REFERENCE = _folded_pattern(
    r"#\s?\d{3,}"  # "#12345"
    r"|\b(?!5+\b)\d{5,}\b"  # order, tracking, phone numbers; not "55555" (Thai laughter)
    r"|\b\d{3,}(?:-\d{3,})+\b"  # "407-0490236-8049166"
    r"|\b(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{6,}\b"  # booking codes "k7xq2p", "1z999aa1"
)
_FLIGHT = _folded_pattern(
    r"\b(?:flight|flt|vuelo|πτήση|πτήσης|رحلة|رحلتي)\s*(?:no\.?|#)?\s*[a-z0-9]{0,2}\s?\d{1,4}\b"
    r"|\b[a-z]{2}\d{2,4}\b"  # "ua514", "aa100"
    r"|เที่ยวบิน\s*[a-z0-9]{0,2}\s?\d{1,4}"
)
# Every alternative of _TIME and _AMOUNT starts with a digit (or a currency sign): the
# leading lookahead only lets the search skip, at once, the positions where none can start.
_TIME = _folded_pattern(
    r"(?=\d)(?:"
    r"\b\d{1,2}:\d{2}\s?(?:am|pm)?\b"
    r"|\b\d{1,2}\s?(?:am|pm)\b"
    r"|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|\b\d{4}-\d{2}-\d{2}\b"
    r"|\d+\s?(?:" + _TIME_UNITS + r")(?!\w)"
    r"|\d+\s?(?:" + _THAI_TIME_UNITS + r")"  # Thai runs on without a space
    r")"
)
_AMOUNT = _folded_pattern(
    r"(?=[$€£¥฿₺₹\d])(?:"
    r"[$€£¥฿₺₹]\s?\d[\d.,]*"
    r"|\d[\d.,]*\s?[$€£฿]"
    r"|\b\d[\d.,]*\s?(?:" + _CURRENCY_NAMES + r")(?!\w)"
    r")"
)
_PRODUCT = _folded_pattern(
    r"\b(?:iphone|ipad|ios|macos|galaxy|pixel|kindle|echo|watch|series|model|version)"
    r"\s?\d[\w.]*"
    r"|\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{2,5}\b(?<!\d(?:st|nd|rd|th))(?<!\d(?:am|pm))"
)


_DIGIT = re.compile(r"\d")
_NUMBERED_SPECIFICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("reference", _REFERENCE),
    ("flight", _FLIGHT),
    ("time", _TIME),
    ("amount", _AMOUNT),
    ("product", _PRODUCT),
)


def _specifics(reading: TextReading) -> dict[str, list[str]]:
    """The concrete facts a message gives, by kind: an unhappy customer gives some, a troll
    rarely does."""
    folded = reading.content
    found: dict[str, list[str]] = {}
    # Every pattern needs a digit; most messages have none.
    patterns = _NUMBERED_SPECIFICS if _DIGIT.search(folded) else ()
    for kind, pattern in patterns:
        matches = [match.group().strip() for match in pattern.finditer(folded)]
        if matches:
            found[kind] = matches
    times = reading.words(TIME)
    if times:
        found.setdefault("time", []).extend(sorted(times))
    events = reading.words(EVENT)
    if events:
        found["event"] = sorted(events)
    return found


def _letters(text: str) -> int:
    return sum(1 for char in text if char.isalpha() or unicodedata.category(char) in {"Mn", "Mc"})


def read_text(model: UrgencyModel, folded: str, language: str | None = None) -> TextReading:
    """What the model's vocabularies find in a folded text, and its sentiment (`language`:
    the message's, if known); mentions and links are not read."""
    content = _MENTIONS_AND_LINKS.sub(" ", folded)
    found = model.vocabularies.find_folded(content)
    topics = frozenset(
        topic for word in found.get(CRISIS, ()) for topic in model.crisis_topics[word]
    )
    tone = classify(
        model.sentiment,
        content,
        language,
        negative_words=bool(NEGATIVE in found or HOSTILE in found),
    )
    return TextReading(content=content, found=found, crisis_topics=topics, sentiment=tone)


def crisis_topics(model: UrgencyModel, folded: str) -> frozenset[str]:
    """The crisis topics a folded text is about (what bursts and incidents group by);
    mentions and links are not read."""
    return read_text(model, folded).crisis_topics


def _crisis_weight(model: UrgencyModel, topics: frozenset[str]) -> int:
    weights = sorted((model.topic_weights.get(t, W_CRISIS_DEFAULT) for t in topics), reverse=True)
    return weights[0] + W_CRISIS_EXTRA_TOPIC * (len(weights) - 1)


def assess(
    model: UrgencyModel,
    message: CanonicalMessage,
    folded: str | None = None,
    context: UrgencyContext | None = None,
    reading: TextReading | None = None,
) -> Assessment:
    """Every signal that fired, with its weight; the score is their sum, kept within 0–100.
    `folded` is the message text already folded (see `keywords.fold`), if the caller has it,
    and `reading` that text read (`read_text`), if the caller has that too; `context` what
    the caller knows about the customer's and others' recent messages."""
    if reading is None:
        reading = read_text(
            model, fold(message.text) if folded is None else folded, message.language
        )
    context = context or UrgencyContext()
    content = reading.content
    signals: list[UrgencySignal] = []

    crisis_words = reading.words(CRISIS)
    topics = reading.crisis_topics
    if topics:
        words_of = {
            topic: sorted(w for w in crisis_words if topic in model.crisis_topics[w])
            for topic in sorted(topics)
        }
        detail = "; ".join(f"{topic}: {', '.join(words)}" for topic, words in words_of.items())
        signals.append(
            UrgencySignal(name="crisis", weight=_crisis_weight(model, topics), detail=detail)
        )

    # A crisis already says what went wrong: its failure words are not counted twice.
    failure = set() if topics else reading.words(FAILURE)
    if failure:
        signals.append(
            UrgencySignal(name="failure", weight=W_FAILURE, detail=", ".join(sorted(failure)))
        )

    # Negative tone is the message's sentiment (which the negative and hostile words make
    # negative whatever the model says): urgency and the case's sentiment never disagree.
    negative = reading.words(NEGATIVE)
    hostile = reading.words(HOSTILE)
    tone = reading.sentiment
    hostility = 0
    if tone.label == "negative":
        strong = len(negative) + len(hostile) >= 2 or tone.score <= NEGATIVE_STRONG_SCORE
        clear = negative or hostile or tone.score <= NEGATIVE_CLEAR_SCORE
        weight = W_NEGATIVE_STRONG if strong else W_NEGATIVE if clear else W_NEGATIVE_MILD
        parts = [f"sentiment {tone.score:+.2f}"]
        if negative:
            parts.append(", ".join(sorted(negative)))
        if hostile:
            parts.append(f"hostile: {', '.join(sorted(hostile))}")
        signals.append(UrgencySignal(name="negative_tone", weight=weight, detail="; ".join(parts)))
        hostility += weight

    shouting = _shouting(message.text)
    if shouting:
        signals.append(UrgencySignal(name="shouting", weight=W_SHOUTING, detail=shouting))
        hostility += W_SHOUTING

    if message.visibility == "public":
        signals.append(UrgencySignal(name="public", weight=W_PUBLIC, detail=message.channel))
    followers = message.author.followers or 0
    if followers >= REACH_LARGE:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_LARGE, detail=f"{followers} followers")
        )
    elif followers >= REACH_MEDIUM:
        signals.append(
            UrgencySignal(name="reach", weight=W_REACH_MEDIUM, detail=f"{followers} followers")
        )
    if message.author.verified:
        signals.append(UrgencySignal(name="verified", weight=W_VERIFIED))

    if context.recent_contacts:
        signals.append(
            UrgencySignal(
                name="repeated_contact",
                weight=min(W_REPEAT_MAX, W_REPEAT_PER_CONTACT * context.recent_contacts),
                detail=f"{context.recent_contacts} earlier contacts in 24 h",
            )
        )
    if topics and context.similar_recent >= BURST_MIN:
        signals.append(
            UrgencySignal(
                name="burst",
                weight=W_BURST_LARGE if context.similar_recent >= BURST_LARGE else W_BURST,
                detail=f"{context.similar_recent} similar recent messages "
                f"({', '.join(sorted(topics))})",
            )
        )

    specifics = _specifics(reading)
    if specifics:
        signals.append(
            UrgencySignal(
                name="specifics",
                weight=W_SPECIFICS_SEVERAL if len(specifics) >= 2 else W_SPECIFICS,
                detail="; ".join(
                    f"{kind}: {', '.join(values)}" for kind, values in specifics.items()
                ),
            )
        )

    # Hostility with nothing concrete (no specifics, nothing that went wrong) and little
    # said: the author most likely wants a reaction, not help. Crises are never discounted.
    troll_likely = bool(
        hostile
        and not specifics
        and not failure
        and not topics
        and _letters(content) <= TROLL_MAX_LETTERS
    )
    if troll_likely:
        signals.append(
            UrgencySignal(
                name="troll_likely",
                weight=-hostility,
                detail="hostility without specifics: tone and shouting not counted",
            )
        )

    total = max(0, min(100, sum(signal.weight for signal in signals)))
    return Assessment(
        urgency=Urgency(score=total, signals=signals),
        crisis_topics=topics,
        troll_likely=troll_likely,
    )


def score(model: UrgencyModel, message: CanonicalMessage, folded: str | None = None) -> Urgency:
    """The urgency of a message judged on its own (no context): `assess(...).urgency`."""
    return assess(model, message, folded).urgency


def priority_for(score_value: int) -> Priority:
    if score_value >= P1_MIN:
        return "P1"
    if score_value >= P2_MIN:
        return "P2"
    if score_value >= P3_MIN:
        return "P3"
    return "P4"
