"""`cytoreg list models` helps choose: each model's role (which tasks and settings it can take),
licence, gating and size come from its spec."""
import json

from cytoreg.cli import main
from cytoreg.registry.catalog import Catalog


def test_list_models_shows_role_licence_gating_and_size(capsys):
    assert main(["list", "models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    cat = Catalog.load()
    assert set(rows) == set(cat.models.names())
    assert rows["uni2-h"]["role"] == "features" and rows["uni2-h"]["gated"] == "yes"
    assert rows["uni2-h"]["licence"] == cat.model("uni2-h").get("license")
    assert rows["uni2-h"]["parameters"] == cat.model("uni2-h").get("parameters")
    assert rows["medsiglip"]["role"] == "embedder" and rows["qwen3-vl-8b"]["role"] == "generator"
    assert rows["phikon-v2"]["gated"] == "no" and rows["gpt-5"]["gated"] == "API"
    assert rows["random"]["role"] == "baseline" and rows["random"]["gated"] == "-"
    assert rows["claude-opus-5-5"]["licence"] == "provider's terms" and rows["conch"]["gated"] == "yes"
    assert rows["musk"]["parameters"] == "675M" and rows["musk"]["adapter"] == "musk"
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "│ role " in out.replace("┃", "│") and "│ uni2-h " in out


def test_unknown_names_get_suggestions_by_case_prefix_and_spelling():
    from cytoreg.registry.core import suggest

    names = Catalog.load().models.names()
    assert suggest("UNI", names) == " — did you mean 'uni'?"
    claude = suggest("claude", names)
    assert "'claude-opus-5-5'" in claude and claude.count("'claude-") == 5  # at most five
    assert suggest("uni2h", names).startswith(" — did you mean 'uni2-h'")
    assert suggest("zzzz", names) == ""


def test_show_marks_generation_keys_the_adapter_does_not_send(capsys):
    assert main(["show", "claude-opus-4-7"]) == 0
    assert "# not sent to the API: generation.temperature (params.sampling false)" in capsys.readouterr().out
    assert main(["show", "claude-sonnet-4-6"]) == 0
    assert "not sent" not in capsys.readouterr().out
