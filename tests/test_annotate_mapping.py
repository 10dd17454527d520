"""Label mapping rules of the annotate job (jupyter_cvat_train.annotate.mapping)."""

import pytest

from jupyter_cvat_train.annotate.mapping import MappingError, build_mapping, parse_map_pairs

MODEL = ["RBC", "WBC", "Platelets"]


def test_by_name_case_insensitive_and_unmapped_dropped():
    m = build_mapping(MODEL, ["rbc", "wbc", "other"])
    assert m.to_target == {"RBC": "rbc", "WBC": "wbc"}
    assert m.dropped == ["Platelets"]
    assert m.lookup().tolist() == [-1, 0, 1, -1]


def test_explicit_pairs_override_and_many_to_one():
    m = build_mapping(MODEL, ["cell", "Platelets"], parse_map_pairs(["RBC=cell", "wbc=CELL"]))
    assert m.to_target == {"RBC": "cell", "WBC": "cell", "Platelets": "Platelets"}
    assert m.dropped == []
    assert m.lookup().tolist() == [-1, 0, 0, 1]


def test_explicit_empty_target_drops_a_label():
    m = build_mapping(MODEL, MODEL, parse_map_pairs({"Platelets": ""}))
    assert m.dropped == ["Platelets"]


def test_without_target_set_pairs_rename():
    m = build_mapping(MODEL, None, parse_map_pairs(["WBC=leukocyte", "Platelets=RBC"]))
    assert m.target_labels == ["RBC", "leukocyte"]
    assert m.lookup().tolist() == [-1, 0, 1, 0]


@pytest.mark.parametrize(
    "pairs,needle", [(["XYZ=RBC"], "model has no label 'XYZ'"), (["WBC=leukocyte"], "no label 'leukocyte'")]
)
def test_unknown_label_is_an_error(pairs, needle):
    with pytest.raises(MappingError, match=needle):
        build_mapping(MODEL, MODEL, parse_map_pairs(pairs))


def test_bad_pair_syntax():
    with pytest.raises(MappingError, match="MODEL_LABEL=TARGET_LABEL"):
        parse_map_pairs(["WBC"])
