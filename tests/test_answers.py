"""Answer extraction on realistic replies: the label, the step that matched, or invalid."""
import pytest

from cytoreg.answers import AnswerExtractor

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
    ("These are endocervical cells? No: Endocervical cell, benign.", "Endocervical cell", "conclusion"),
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
