"""Regenerate the built-in specs whose prompt strings come from seed A's code.

    python tools/gen_seed_specs.py PATH/TO/seed-code-prompts.json

The prompt strings are protocol data: they are copied byte-exact (tabs, trailing spaces,
typos) from the extracted prompt file, never retyped. Everything else is written here.
"""
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).parents[1] / "src/cytoreg/tasks/specs"
DATA = "${CYTOREG_DATA:-~/cytoreg-data}"
SOURCE_A = "seed A (marrlab/vlm_cytomorphology_eval @ 79253f5, prompts/prompts.py), byte-exact"
FEW_SHOT = {"example": None, "rewrites": [["the input image", "this image"], ["input image", "this image"],
                                          ["the this image", "this image"]], "text_position": "before_image"}
METRICS = ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "invalid_rate", "per_class",
           "confusion_matrix", "auc_macro", "auc_per_class", "ece"]
STATS = {"seed": 0, "bootstrap": 1000, "confidence": 0.95, "folds": 5, "paired_bootstrap": 20000}
SAMPLING = {"seed": 42, "test_per_class": 50, "fewshot_per_class": 1, "order": ["test", "fewshot"]}


# `cytoreg data fetch NAME` prints these steps: these datasets need a person (licence, TCIA's Aspera, ...)
PBC = "https://data.mendeley.com/datasets/snkd93bnjr/1"
MANUAL = {
    "hicervix": [
        "Read the terms at https://github.com/Scu-sen/HiCervix (GPLv3, non-commercial academic use).",
        "Download train.csv, val.csv, test.csv and the train/, val/, test/ image folders from "
        "https://zenodo.org/records/11087263.",
        "Place them so that $CYTOREG_DATA/hicervix/test.csv and $CYTOREG_DATA/hicervix/test/<image_name> exist.",
    ],
    "bmc": [
        "Open https://www.cancerimagingarchive.net/collection/bone-marrow-cytomorphology_mll_helmholtz_fraunhofer/ "
        "(TCIA, CC BY 4.0, about 6.8 GB).",
        "Download the JPG images with TCIA's IBM Aspera link (install the Aspera Connect browser extension when asked).",
        "Move the unpacked BM_cytomorphology_data folder to $CYTOREG_DATA/bmc/ so that "
        "$CYTOREG_DATA/bmc/BM_cytomorphology_data/<ABBR>/... exists (21 class folders).",
    ],
    "mll23": [
        "Download the image archive(s) of https://zenodo.org/records/14277609 (MLL23).",
        "Unzip into $CYTOREG_DATA/mll23 so that $CYTOREG_DATA/mll23/<class folder>/ holds the .TIF images (an extra "
        "<class>/<class>/ level is fine; __MACOSX is skipped).",
    ],
    "wbcatt": [
        "Download submission/pbc_attr_v1_train.csv, pbc_attr_v1_val.csv and pbc_attr_v1_test.csv from "
        "https://github.com/apple2373/wbcatt into $CYTOREG_DATA/wbcatt/.",
        f"Get the PBC images from {PBC} ('Download All') and unzip them so that "
        "$CYTOREG_DATA/wbcatt/PBC_dataset_normal_DIB/<class folder>/<file>.jpg exists (a symlink to the acevedo "
        "copy works).",
    ],
}
# what `cytoreg data verify` counts: published counts cover every split, the task reads only one
SPLITS = {"hicervix": {"splits": {sp: {"manifest": f"{sp}.csv", "path_template": f"{sp}/{{image_name}}"}
                                  for sp in ("train", "val", "test")}}}


class Literal(str):
    pass


def _str(dumper, data):
    style = '"' if ("\n" in data or "\t" in data or data != data.strip()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


yaml.add_representer(str, _str)


def write(name: str, header: str, spec: dict) -> None:
    if name in MANUAL:  # the download block goes right before data:
        items = list(spec.items())
        i = [k for k, _ in items].index("data")
        spec = dict(items[:i] + [("download", {"manual": MANUAL[name], **SPLITS.get(name, {})})] + items[i:])
    text = header + yaml.dump(spec, sort_keys=False, allow_unicode=True, width=100000)
    (OUT / f"{name}.yaml").write_text(text)
    assert yaml.safe_load(text) == spec, name


HICERVIX = [  # abbr, seed label, level_1, level_2, published count
    ("Normal", "Normal cell", "negative", "Normal", 3454), ("ECC", "Endocervical cell", "negative", "ECC", 2272),
    ("RPC", "Repair cell", "negative", "RPC", 2111), ("MPC", "Metaplasia cell", "negative", "MPC", 1591),
    ("PG", "Pseudokoilocytes by glycogen", "negative", "PG", 1563), ("Atrophy", "Atrophy", "negative", "Atrophy", 1484),
    ("EMC", "Endometrial cell", "negative", "EMC", 1529),
    ("HCG", "Hyperchromatic crowded groups", "negative", "HCG", 887),
    ("ASC-US", "Atypical squamous cells of undetermined significance", "ASC", "ASC-US", 2599),
    ("LSIL", "Low-grade squamous intraepithelial lesion", "ASC", "LSIL", 1744),
    ("ASC-H", "Atypical squamous cells, cannot exclude high-grade squamous intraepithelial lesion", "ASC", "ASC-H", 1437),
    ("HSIL", "High-grade squamous intraepithelial lesion", "ASC", "HSIL", 1988),
    ("SCC", "Squamous cell carcinoma", "ASC", "SCC", 1072),
    ("AGC", "Atypical glandular cell", "AGC", None, 2089),
    ("AGC-NOS", "Atypical glandular cell- not otherwise specified", "AGC", "AGC-NOS", 2205),
    ("AGC-FN", "Atypical glandular cell- favor neoplastic", "AGC", "AGC-FN", 1114),
    ("ADC", "Adenocarcinoma", "AGC", "ADC", 1311),
    ("AGC-ECC-NOS", "Atypical glandular cell (endocervical cell)- not otherwise specified", "AGC", "AGC-NOS", 1065),
    ("AGC-EMC-NOS", "Atypical glandular cell (endometrial cell)- not otherwise specified", "AGC", "AGC-NOS", 253),
    ("ADC-ECC", "Adenocarcinoma of endocervical cell", "AGC", "ADC", 244),
    ("ADC-EMC", "Adenocarcinoma of endometrial cell", "AGC", "ADC", 108),
    ("FUNGI", "Fungal organisms morphologically consistent with Candida spp.", "microbe", "FUNGI", 2047),
    ("ACTINO", "Bacteria morphologically consistent with Actinomyces spp.", "microbe", "ACTINO", 2018),
    ("TRI", "Trichomonas vaginalis", "microbe", "TRI", 1697),
    ("HSV", "Cellular changes consistent with herpes simplex virus", "microbe", "HSV", 1248),
    ("CC", "Coccobacilli/Shift in flora suggestive of bacterial vaginosis", "microbe", "CC", 1099),
]

BMC = {"ABE": ("Abnormal eosinophil", 8), "ART": ("Artefact", 19630), "BAS": ("Basophil", 441),
       "BLA": ("Blast", 11973), "EBO": ("Erythroblast", 27395), "EOS": ("Eosinophil", 5883),
       "FGC": ("Faggott cell", 47), "HAC": ("Hairy cell", 409), "KSC": ("Smudge cell", 42),
       "LYI": ("Immature lymphocyte", 65), "LYT": ("Lymphocyte", 26242), "MMZ": ("Metamyelocyte", 3055),
       "MON": ("Monocyte", 4040), "MYB": ("Myelocyte", 6557), "NGB": ("Band neutrophil", 9968),
       "NGS": ("Segmented neutrophil", 29424), "NIF": (None, 3538), "OTH": ("Other cell", 294),
       "PEB": ("Proerythroblast", 2740), "PLM": ("Plasma cell", 7629), "PMO": ("Promyelocyte", 11994)}

MLL23 = {  # folder -> seed label (None: no label in the Acevedo space), count (labels_MLL23.csv)
    "myeloblast": (None, 8606), "neutrophil_segmented": ("segmented neutrophil", 7170),
    "lymphocyte": ("lymphocyte", 5532), "hairy_cell": (None, 3265), "monocyte": ("monocyte", 2510),
    "eosinophil": ("eosinophil", 2448), "normoblast": ("erythroblast", 2071), "promyelocyte_atypical": (None, 2033),
    "lymphocyte_large_granular": (None, 1849), "plasma_cell": (None, 1658), "smudge_cell": (None, 988),
    "myelocyte": ("myelocyte", 747), "promyelocyte": ("promyelocyte", 745), "neutrophil_band": ("band neutrophil", 687),
    "basophil": ("basophil", 616), "metamyelocyte": ("metamyelocyte", 483), "lymphocyte_neoplastic": (None, 180),
    "lymphocyte_reactive": (None, 33)}


def main(prompts_file: str) -> None:
    d = json.loads(Path(prompts_file).read_text())
    gp = d["get_prompt"]
    few = dict(FEW_SHOT, example=d["oneshot_teaching_message_template"].replace("{category}", "cell_type")
               .replace("{cell_class}", "{label}"))
    def judge(key: str, field: str = "cell_type") -> str:
        """Seed A's review wrapper around its review prompt; {answer} is the model's reply."""
        return d["review_wrapper_template"].replace("{original_answer}", "{answer}").replace(
            "{prompt_text}", gp[key][field])

    header = ("# Generated by tools/gen_seed_specs.py from seed A's prompt strings (byte-exact); edit the\n"
              "# generator, not this file.\n")

    labels = [lab for _, lab, *_ in HICERVIX]
    write("hicervix", header, {
        "spec": "task/v1", "name": "hicervix", "kind": "classification",
        "description": "HiCervix cervical cytology: 26 annotated classes of a 3-level hierarchy (29 tree nodes), "
                       "seed A's label strings; metrics also at level 1 (4 classes) and level 2",
        "citation": "Cai D. et al. HiCervix: An Extensive Hierarchical Dataset and Benchmark for Cervical Cytology "
                    "Classification. IEEE TMI (2024). doi:10.1109/TMI.2024.3419697",
        "license": "GPLv3, non-commercial academic use (dataset README)",
        "homepage": "https://github.com/Scu-sen/HiCervix",
        "redistributable": False,
        "domain": "cytology",
        "download_url": "https://zenodo.org/records/11087263",
        "layout": "hicervix/{train,val,test}.csv (image_name,class_name,class_id,level_1,level_2,level_3) and "
                  "hicervix/{train,val,test}/<uuid>.jpg; the test split is sampled",
        "data": {"source": "manifest", "root": f"{DATA}/hicervix", "manifest": "test.csv",
                 "path_template": "test/{image_name}", "label_column": "class_name", "id_column": "image_name",
                 "label_map": {abbr: lab for abbr, lab, *_ in HICERVIX}},
        "labels": labels,
        "aliases": {"Normal cell": ["NILM", "negative for intraepithelial lesion"],
                    "Atypical squamous cells of undetermined significance": ["ASC-US"],
                    "Low-grade squamous intraepithelial lesion": ["LSIL"],
                    "High-grade squamous intraepithelial lesion": ["HSIL"],
                    "Atypical squamous cells, cannot exclude high-grade squamous intraepithelial lesion": ["ASC-H"]},
        "hierarchy": {"levels": ["level_1", "level_2"],
                      "parents": {lab: [l1, l2] for _, lab, l1, l2, _ in HICERVIX}},
        "sampling": SAMPLING, "settings": ["zero_shot", "few_shot"],
        "prompts": {"source": SOURCE_A, "zero_shot": gp["HiCervix|0shot_classification|ask"]["cell_type"],
                    "judge": judge("HiCervix|0shot_classification|review"),
                    "few_shot": few, "clip": {"templates": [d["clip_zero_shot"]["single_label_template"]]}},
        "metrics": METRICS, "primary_metric": "f1_weighted", "statistics": STATS,
        "reference": {"source": "HiCervix README (HierSwin, full test split); seed A Table 1",
                      "metric": "accuracy",
                      "values": {"HierSwin level-1 accuracy": 0.9208, "HierSwin level-2 accuracy": 0.7836,
                                 "HierSwin level-3 accuracy": 0.7835},
                      "published_counts": {lab: n for _, lab, _, _, n in HICERVIX},
                      "published_split_sizes": {"train": 28160, "val": 4018, "test": 8051}},
    })

    bmc_labels = [name for name, _ in BMC.values() if name]
    write("bmc", header, {
        "spec": "task/v1", "name": "bmc", "kind": "classification",
        "description": "Bone-marrow cytomorphology (MLL/Helmholtz/Fraunhofer, TCIA): 21 folders, seed A's 20 "
                       "labels (NIF 'not identifiable' left out, as in the seed's prompt)",
        "citation": "Matek C. et al. Highly accurate differentiation of bone marrow cell morphologies using deep "
                    "neural networks on a large image data set. Blood 138(20):1917 (2021). doi:10.7937/TCIA.AXH3-T579",
        "license": "CC BY 4.0",
        "homepage": "https://www.cancerimagingarchive.net/collection/bone-marrow-cytomorphology_mll_helmholtz_fraunhofer/",
        "domain": "haematology",
        "download_url": "https://www.cancerimagingarchive.net/collection/bone-marrow-cytomorphology_mll_helmholtz_fraunhofer/",
        "layout": "BM_cytomorphology_data/<ABBR>/[<range>/]<ABBR>_<5 digits>.jpg (range folders like 0001-1000 "
                  "for classes with more than 1,000 images), walked recursively",
        "data": {"source": "imagefolder", "root": f"{DATA}/bmc/BM_cytomorphology_data", "label_from": "folder",
                 "label_map": {abbr: name for abbr, (name, _) in BMC.items()}},
        "labels": bmc_labels,
        "aliases": {name: [abbr] for abbr, (name, _) in BMC.items() if name},
        "sampling": SAMPLING, "settings": ["zero_shot", "few_shot"],
        "prompts": {"source": SOURCE_A, "zero_shot": gp["Bone_Marrow_Cyto|0shot_classification|ask"]["cell_type"],
                    "judge": judge("Bone_Marrow_Cyto|0shot_classification|review"),
                    "few_shot": few, "clip": {"templates": [d["clip_zero_shot"]["single_label_template"]]}},
        "metrics": METRICS, "primary_metric": "f1_weighted", "statistics": STATS,
        "reference": {"source": "seed A (Kukuljan et al.), results text and Table 1", "metric": "f1_weighted",
                      "values": {"Matek et al. 2021 (dedicated model)": 0.75, "Gemini-2.0 zero-shot": 0.09},
                      "random_f1_weighted": 0.05,
                      "published_counts": {name: n for name, n in BMC.values() if name}},
    })

    mll_labels = gp["MLL23|0shot_classification|ask"]["cell_type"].split("exactly as written here):\n")[1]
    mll_labels = [x.strip() for x in mll_labels.split("\n") if x.strip()]
    mll_counts: dict[str, int] = {}
    for name, n in MLL23.values():
        if name:
            mll_counts[name] = mll_counts.get(name, 0) + n
    write("mll23", header, {
        "spec": "task/v1", "name": "mll23", "kind": "classification",
        "description": "MLL23 peripheral blood (18 folders) as seed A's out-of-domain test: only the classes "
                       "shared with Acevedo, asked in Acevedo's 11-label space (lower case)",
        "citation": "MLL23, Sci Data 12:1773 (2025). doi:10.1038/s41597-025-06223-x",
        "license": "see the Zenodo record",
        "homepage": "https://github.com/marrlab/MLL23",
        "domain": "haematology",
        "download_url": "https://zenodo.org/records/14277609",
        "layout": "<class folder>/[<class folder>/]<class>_<4 digits>.TIF (288x288 TIFF; extension case varies; "
                  "__MACOSX and ._* skipped)",
        "data": {"source": "imagefolder", "root": f"{DATA}/mll23", "label_from": "folder",
                 "label_map": {f: name for f, (name, _) in MLL23.items()}},
        "labels": mll_labels,
        "aliases": {"segmented neutrophil": ["neutrophil segmented", "segmented neutrophils"],
                    "band neutrophil": ["neutrophil band", "band cell"], "erythroblast": ["normoblast"]},
        "sampling": SAMPLING, "settings": ["zero_shot", "few_shot"],
        "prompts": {"source": SOURCE_A, "zero_shot": gp["MLL23|0shot_classification|ask"]["cell_type"],
                    "judge": judge("MLL23|0shot_classification|review"),
                    "few_shot": few, "clip": {"templates": [d["clip_zero_shot"]["single_label_template"]]}},
        "metrics": METRICS, "primary_metric": "f1_weighted", "statistics": STATS,
        "reference": {"source": "seed A (Kukuljan et al.), results text", "metric": "f1_weighted",
                      "values": {"DinoBloom-S MLP, n=200 (trained on Acevedo)": 0.54,
                                 "GPT-4o fine-tuned, n=200": 0.50, "GPT-4o zero-shot": 0.19},
                      "random_f1_weighted": 0.10, "published_counts": mll_counts,
                      "notes": "platelet has no MLL23 images, so 10 of the 11 labels occur"},
    })

    w = gp["WBCAtt|0shot_classification|ask"]
    classes = d["clip_zero_shot"]["WBCAtt_classes"]
    prefixes = d["clip_zero_shot"]["WBCAtt_prefixes"]
    write("wbcatt", header, {
        "spec": "task/v1", "name": "wbcatt", "kind": "attributes",
        "description": "WBCAtt: 11 morphological attributes (and the cell type) of PBC white blood cells, each a "
                       "closed label set asked separately; per-attribute and mean weighted F1",
        "citation": "Tsutsui S., Pang W., Wen B. WBCAtt: A White Blood Cell Dataset Annotated with Detailed "
                    "Morphological Attributes. NeurIPS 2023 Datasets and Benchmarks. arXiv:2306.13531",
        "license": "annotations MIT; images CC BY 4.0 (PBC, Acevedo et al. 2020)",
        "homepage": "https://github.com/apple2373/wbcatt",
        "domain": "haematology",
        "download_url": "https://github.com/apple2373/wbcatt (annotations) + https://data.mendeley.com/datasets/snkd93bnjr/1 (images)",
        "layout": "wbcatt/pbc_attr_v1_{train,val,test}.csv beside the PBC folder: their path column "
                  "(PBC_dataset_normal_DIB/<class>/<file>) is resolved against data.root",
        "data": {"source": "manifest", "root": f"{DATA}/wbcatt", "manifest": "pbc_attr_v1_test.csv",
                 "path_column": "path", "label_column": "label", "id_column": "img_name"},
        "labels": classes["label"],
        "attributes": {attr: {"labels": classes[attr], "zero_shot": w[attr], "clip_prefix": prefixes[attr],
                              "judge": judge("WBCAtt|0shot_classification|review", attr)}
                       for attr in w},
        "sampling": SAMPLING, "settings": ["zero_shot", "few_shot"],
        "prompts": {"source": SOURCE_A,
                    "few_shot": dict(FEW_SHOT, example=d["oneshot_teaching_message_template"]
                                     .replace("{category}", "{attribute}").replace("{cell_class}", "{label}"))},
        "metrics": ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "invalid_rate", "per_class",
                    "confusion_matrix"],
        "primary_metric": "f1_weighted", "statistics": STATS,
        "reference": {"source": "WBCAtt README (ResNet-50, mean over the 11 attributes, full test split)",
                      "metric": "accuracy", "values": {"ResNet-50 accuracy": 0.9409, "ResNet-50 macro F1": 0.9127}},
    })


    write("acevedo-explain", header, {
        "spec": "task/v1", "name": "acevedo-explain", "extends": "acevedo", "kind": "explain",
        "description": "seed A's explainability protocol on Acevedo: classify and score 19 morphological features "
                       "(sum 100), or classify and explain in free text with a self-reported certainty",
        "settings": ["features", "free_text"],
        "prompts": {"source": SOURCE_A,
                    "explain_features": gp["Acevedo|explainability|ask"]["cell_type"],
                    "explain_text": gp["Acevedo|nonstructured|ask"]["cell_type"]},
        "explain": {"features": d["explainability_feature_list_19"]},
        "metrics": ["accuracy", "balanced_accuracy", "f1_weighted", "f1_macro", "invalid_rate", "per_class",
                    "confusion_matrix"],
        "reference": {"source": "seed A (Kukuljan et al.), results text: confidence table and expert review",
                      "metric": "confidence",
                      "values": {"GPT-4o corr(confidence, correctness)": 0.03,
                                 "fine-tuned GPT-4o (n=200) corr": 0.20, "Gemini-2.0 corr": 0.05,
                                 "Llama-3.2 corr": 0.002},
                      "notes": "expert ratings of fine-tuned GPT-4o explanations: 1.1 +- 0.3 (correct, n=55), "
                               "2.8 +- 1.4 (wrong), 30% of wrong rated poor or misleading"},
    })

    # acevedo.yaml is maintained by hand; only its judge prompt is (re)written from the seed file
    path = OUT / "acevedo.yaml"
    text = path.read_text()
    start = text.index("  zero_shot:")
    line = "  judge: " + json.dumps(judge("Acevedo|0shot_classification|review"), ensure_ascii=False) + "\n"
    if "\n  judge: " in text:
        text = "\n".join(x for x in text.split("\n") if not x.startswith("  judge: "))
        start = text.index("  zero_shot:")
    path.write_text(text[:start] + line + text[start:])
    assert yaml.safe_load(path.read_text())["prompts"]["judge"].startswith("Chatbot answered: {answer}")


if __name__ == "__main__":
    main(sys.argv[1])
