"""Answer extraction on realistic replies: the label, the step that matched, or invalid."""
import pytest

from cytoreg.answers import AnswerExtractor, OptionReader

ACEVEDO = ["Band Neutrophil", "Basophil", "Eosinophil", "Erythroblast", "Lymphocyte", "Metamyelocyte",
           "Monocyte", "Myelocyte", "Platelet", "Promyelocyte", "Segmented Neutrophil"]
ALIASES = {"Erythroblast": ["nucleated red blood cell", "normoblast"], "Platelet": ["thrombocyte", "platelets"]}
HICERVIX = ["Atypical glandular cell", "Atypical glandular cell- not otherwise specified", "Adenocarcinoma",
            "Adenocarcinoma of endocervical cell", "Endocervical cell", "Low-grade squamous intraepithelial lesion"]

CASES = [
    ("Basophil", "Basophil", "exact"),
    ("basophil", "Basophil", "exact"),
    ("BASOPHIL.", "Basophil", "exact"),
    ("**Eosinophil**", "Eosinophil", "exact"),
    ("`Monocyte`", "Monocyte", "exact"),
    ("  Lymphocyte\n", "Lymphocyte", "exact"),
    ('"Platelet"', "Platelet", "exact"),
    ("Segmented Neutrophil", "Segmented Neutrophil", "exact"),
    ("segmented neutrophil.", "Segmented Neutrophil", "exact"),
    ("Thrombocyte", "Platelet", "alias"),
    ("Nucleated red blood cell", "Erythroblast", "alias"),
    ("normoblast", "Erythroblast", "alias"),
    ("Platelets", "Platelet", "alias"),
    ("The cell shows a bilobed nucleus and dense dark granules.\nAnswer: Basophil", "Basophil", "field_line"),
    ("Reasoning: large cell, fine chromatin.\n\nAnswer: **Monocyte**", "Monocyte", "field_line"),
    ("answer: eosinophil", "Eosinophil", "field_line"),
    ("Final answer: Myelocyte.", "Myelocyte", "field_line"),
    ("Metamyelocyte\n\nThe kidney-shaped nucleus suggests this stage.", "Metamyelocyte", "first_line"),
    ("Promyelocyte - large cell with prominent primary granules", "Promyelocyte", "first_line"),
    ("The cell in the image is a lymphocyte.", "Lymphocyte", "conclusion"),
    ("This appears to be a band neutrophil, given the unsegmented curved nucleus.", "Band Neutrophil", "conclusion"),
    ("I believe this is an Erythroblast (nucleated red cell precursor).", "Erythroblast", "conclusion"),
    ("## Classification\nThe image most likely shows a **segmented neutrophil** with 3 lobes.",
     "Segmented Neutrophil", "field_line"),  # a heading, then its value
    ("Cell type: Monocyte", "Monocyte", "field_line"),
    ("- Cell type: Platelet\n- Confidence: high", "Platelet", "field_line"),
    ("Eosinophill", "Eosinophil", "fuzzy"),
    ("Lymphocite", "Lymphocyte", "fuzzy"),
    ("Basophile", "Basophil", "fuzzy"),
    # invalid: refusals, nothing named, two labels named
    ("I'm sorry, I can't help with identifying medical images.", None, "invalid"),
    ("I cannot determine the cell type from this image.", None, "invalid"),
    ("", None, "invalid"),
    ("The image shows red blood cells.", None, "invalid"),
    ("It could be a Monocyte or a Lymphocyte.", None, "invalid"),
    ("Not a basophil; it is an eosinophil.", "Eosinophil", "conclusion"),  # the negated name is set aside
    ("Neutrophil", None, "invalid"),  # not specific: band or segmented?
    ("Myeloid cell", None, "invalid"),
    ("Band Neutrophil or Segmented Neutrophil", None, "invalid"),
    ("Answer: unclear", None, "invalid"),
]

NESTED = [
    ("Adenocarcinoma of endocervical cell", "Adenocarcinoma of endocervical cell", "exact"),
    ("The cells show adenocarcinoma of endocervical cell origin.", "Adenocarcinoma of endocervical cell", "conclusion"),
    ("Diagnosis: Atypical glandular cell- not otherwise specified",
     "Atypical glandular cell- not otherwise specified", "field_line"),
    ("These are endocervical cells? No: Endocervical cell, benign.", "Endocervical cell", "contains"),
    ("low-grade squamous intraepithelial lesion (LSIL)", "Low-grade squamous intraepithelial lesion", "first_line"),
    ("Adenocarcinoma", "Adenocarcinoma", "exact"),
]


@pytest.mark.parametrize("reply,label,step", CASES)
def test_acevedo_replies(reply, label, step):
    got = AnswerExtractor(ACEVEDO, ALIASES).extract(reply)
    assert (got.label, got.step) == (label, step), got


@pytest.mark.parametrize("reply,label,step", NESTED)
def test_nested_labels_prefer_the_longest_match(reply, label, step):
    got = AnswerExtractor(HICERVIX).extract(reply)
    assert (got.label, got.step) == (label, step), got


def test_corpus_size():
    assert len(CASES) + len(NESTED) >= 40


def test_judge_is_only_asked_when_rules_fail():
    asked = []

    def judge(text):
        asked.append(text)
        return "Monocyte"

    ex = AnswerExtractor(ACEVEDO, judge=judge)
    assert ex.extract("Basophil").step == "exact" and not asked
    got = ex.extract("A large cell with a folded nucleus and grey-blue cytoplasm.")
    assert (got.label, got.step) == ("Monocyte", "judge") and len(asked) == 1


BMC = ["Abnormal eosinophil", "Artefact", "Basophil", "Blast", "Erythroblast", "Eosinophil", "Faggott cell",
       "Hairy cell", "Smudge cell", "Immature lymphocyte", "Lymphocyte", "Metamyelocyte", "Monocyte", "Myelocyte",
       "Band neutrophil", "Segmented neutrophil", "Other cell", "Proerythroblast", "Plasma cell", "Promyelocyte"]
BMC_ALIASES = {"Artefact": ["ART"], "Monocyte": ["MON"], "Blast": ["BLA"], "Eosinophil": ["EOS"]}


def read(reply, labels=ACEVEDO, aliases=ALIASES):
    got = AnswerExtractor(labels, aliases).extract(reply)
    return got.label, got.step


# -- field lines: the last answer field, else the last descriptive field -------------------------
@pytest.mark.parametrize("reply,label", [
    ("**Cell Type:** Lymphocyte\n**Confidence:** moderate", "Lymphocyte"),
    ("**Cell type**: lymphocytes", "Lymphocyte"),
    ("### Final Answer\n**Monocyte**", "Monocyte"),
    ("| Feature | Observation |\n|---|---|\n| Nucleus | round |\n| **Identification** | **Basophil** |", "Basophil"),
    ("Dense granules over the nucleus. Answer: Basophil", "Basophil"),
    ("Cell type: Lymphocyte\n\nExplanation: small, round nucleus, unlike a monocyte or a myelocyte.", "Lymphocyte"),
    ("Cell type: Monocyte\nFinal answer: Lymphocyte", "Lymphocyte"),  # an answer field outranks a descriptive one
    ("Diagnosis: the cell is an eosinophil (not a basophil)", "Eosinophil"),
    ("*Answer*: Myelocyte", "Myelocyte"),
])
def test_field_lines(reply, label):
    assert read(reply) == (label, "field_line")


@pytest.mark.parametrize("reply,why", [
    ("Answer: Monocyte or Lymphocyte\nTherefore Monocyte.", "field line hedges"),
    ("The cell could be a lymphocyte.\nAnswer: unclear", "answer field says"),
    ("Final Answer: N/A. It might be a monocyte.", "answer field says"),
])
def test_field_lines_that_decline_or_hedge_end_the_chain(reply, why):
    got = AnswerExtractor(ACEVEDO, ALIASES).extract(reply)
    assert got.label is None and got.step == "invalid" and got.detail.startswith(why), got


# -- conclusions: the last explicit one; strong cues before the first line, weak ones after ------
@pytest.mark.parametrize("reply,label", [
    ("Is it a lymphocyte? The cytoplasm is too abundant. A myelocyte would show granules. "
     "So the final answer is Monocyte.", "Monocyte"),
    ("Eosinophils have orange granules and basophils dark ones; here they are dark.\n\nTherefore, basophil.",
     "Basophil"),
    ("Considering the lobes, I would classify this cell as a segmented neutrophil.", "Segmented Neutrophil"),
    ("Lymphocyte?\n\nLooking more closely at the folded nucleus, the answer is monocyte.", "Monocyte"),
    ("The round nucleus excludes a band neutrophil. These findings are most consistent with a myelocyte.",
     "Myelocyte"),
    ("This appears to be a **promyelocyte**; promyelocytes are larger than myelocytes.", "Promyelocyte"),
    ("It's larger than a lymphocyte, so monocyte.", "Monocyte"),
])
def test_conclusions(reply, label):
    assert read(reply) == (label, "conclusion")


def test_a_hedging_conclusion_is_invalid():
    got = AnswerExtractor(ACEVEDO).extract("Therefore, the cell is either a myelocyte or a metamyelocyte.")
    assert (got.label, got.step) == (None, "invalid") and "Metamyelocyte, Myelocyte" in got.detail


def test_first_line_before_weak_conclusions():
    reply = ("Erythroblast. Reasoning: the cytoplasm is pinkish, unlike a lymphocyte; a plasma cell "
             "would look similar but is most consistent with a larger cell.")
    assert read(reply) == ("Erythroblast", "first_line")


# -- negation, comparison, questions: set aside -------------------------------------------------
@pytest.mark.parametrize("reply", [
    "The cell is a monocyte, not a lymphocyte.",
    "Unlike a lymphocyte, this cell has abundant grey cytoplasm: monocyte.",
    "A monocyte rather than a lymphocyte.",
    "The cell is much larger than a lymphocyte and is a monocyte.",
    "It can be distinguished from a lymphocyte by its folded nucleus; monocyte.",
    "A lymphocyte is ruled out by the size. Monocyte.",
    "Lymphocyte is unlikely given the size; monocyte.",
    "Is it a lymphocyte? The nucleus is folded. Monocyte.",
    "Monocyte, as opposed to a lymphocyte.",
    "Monocyte instead of a lymphocyte",
    "This non-lymphocyte cell is a monocyte.",
    "The nucleus is not as round as in a lymphocyte: a monocyte.",
])
def test_negated_and_compared_names_are_set_aside(reply):
    assert read(reply)[0] == "Monocyte"


# -- nested labels and abbreviations -----------------------------------------------------------
@pytest.mark.parametrize("reply,label", [
    ("The cell is a metamyelocyte.", "Metamyelocyte"),
    ("metamyelocytes", "Metamyelocyte"),
    ("An immature lymphocyte with fine chromatin.", "Immature lymphocyte"),
    ("Band neutrophil, the nucleus is a band.", "Band neutrophil"),
    ("The cells are proerythroblasts.", "Proerythroblast"),
])
def test_nested_names_read_as_the_longest(reply, label):
    assert read(reply, BMC, BMC_ALIASES)[0] == label


def test_a_nested_name_alone_is_not_its_parent():
    assert read("Neutrophil", BMC, BMC_ALIASES) == (None, "invalid")
    assert read("The cells are myelocytes and metamyelocytes.", BMC, BMC_ALIASES) == (None, "invalid")


def test_capital_abbreviations_match_only_in_capitals():
    assert read("With state of the art staining the cell is clearly a lymphocyte.", BMC, BMC_ALIASES) == \
        ("Lymphocyte", "conclusion")
    assert read("Answer: MON Monocyte", BMC, BMC_ALIASES) == ("Monocyte", "field_line")
    assert read("Answer: ART", BMC, BMC_ALIASES) == ("Artefact", "field_line")


@pytest.mark.parametrize("reply,label,step", [
    ("The final answer is: $\\boxed{Platelet}$", "Platelet", "conclusion"),
    ("This appears to be a lymphocite.", "Lymphocyte", "fuzzy"),
    ("Cell type: Eosinophill", "Eosinophil", "fuzzy"),
    ("EOSINOPHILS", "Eosinophil", "contains"),
])
def test_markup_plural_and_misspellings(reply, label, step):
    assert read(reply) == (label, step)


def test_refusals_are_invalid_and_say_so():
    for reply in ("I'm sorry, but I can't help with identifying cells in medical images.",
                  "I can't determine the specific cell type. It could be a lymphocyte, but I cannot be sure."):
        got = AnswerExtractor(ACEVEDO).extract(reply)
        assert got.label is None and got.step == "invalid", got


# -- multiple choice ---------------------------------------------------------------------------
OPTIONS = ["Erythema multiforme", "Secondary syphilis", "Pityriasis rosea", "Sarcoidosis", "Lichen planus"]


def choose(reply):
    got = OptionReader(OPTIONS).extract(reply)
    return got.label, got.step


@pytest.mark.parametrize("reply,option", [
    ("C", "3"), ("(C)", "3"), ("C)", "3"), ("C.", "3"), ("**C**", "3"), ("3", "3"), ("3.", "3"), ("c", "3"),
    ("Option C", "3"), ("option 3", "3"), ("Answer: C", "3"), ("Answer: (C)", "3"), ("**Answer:** 3", "3"),
    ("C. Pityriasis rosea", "3"), ("3. Pityriasis rosea", "3"), ("(C) Pityriasis rosea", "3"),
    ("Pityriasis rosea", "3"), ("pityriasis rosea.", "3"),
])
def test_mcq_markers_standing_as_answers(reply, option):
    assert choose(reply)[0] == option


@pytest.mark.parametrize("reply,option,step", [
    ("The herald patch and the Christmas-tree pattern mean the answer is C.", "3", "conclusion"),
    ("Target lesions are absent; I'd go with option 3.", "3", "conclusion"),
    ("Option C (Pityriasis rosea) is the most likely diagnosis.", "3", "conclusion"),
    ("This is a case of sarcoidosis.", "4", "conclusion"),
    ("1. Erythema multiforme: no target lesions.\n2. Secondary syphilis: palms spared.\n"
     "3. Pityriasis rosea: herald patch present.\n\nC. Pityriasis rosea", "3", "last_line"),
    ("The final answer is: $\\boxed{D}$", "4", "conclusion"),
    ("Purple, flat-topped papules with Wickham striae: lichen planus, not secondary syphilis.", "5", "contains"),
])
def test_mcq_conclusions_lines_and_texts(reply, option, step):
    assert choose(reply) == (option, step)


@pytest.mark.parametrize("reply", [
    "I'm sorry, but I can't provide a diagnosis based on this image.",
    "I'd need more information.",
    "A rash was present for 3 days; the patient is 45 years old and has 2 children.",
    "i.e. the image is unclear",
    "1. The lesions are purple.\n2. They are flat.",  # a numbered list of reasoning is not an option
    "Secondary syphilis or pityriasis rosea.",
    "C. Lichen planus",  # the marker and the text name different options
    "Choices:\n1. Erythema multiforme\n2. Secondary syphilis\n3. Pityriasis rosea\n4. Sarcoidosis\n5. Lichen planus",
    "Not sarcoidosis.",
])
def test_mcq_words_numbers_refusals_and_hedges_are_never_options(reply):
    assert choose(reply) == (None, "invalid")


def test_mcq_refusal_detail_tells_the_judge_why():
    got = OptionReader(OPTIONS).extract("I'm sorry, but I can't provide a diagnosis.")
    assert (got.label, got.step, got.detail) == (None, "invalid", "refusal")
