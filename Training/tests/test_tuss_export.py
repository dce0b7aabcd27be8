"""Export format, official key names and the committed Swift parity fixtures."""

import json
import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1]
REPO = TRAINING.parent
SHARED = (REPO / ".." / "shared").resolve()
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")


def test_state_dict_names_match_official_medium():
    keys_file = SHARED / "docs" / "keys" / "tuss_medium_keys.txt"
    hparams = SHARED / "reference" / "tuss-medium" / "hparams.yaml"
    if not keys_file.is_file() or not hparams.is_file():
        pytest.skip(f"{keys_file} / {hparams} not found (needs shared/ beside the repo)")
    pytest.importorskip("yaml")
    from tuss.model import SeparationModel, load_yaml_config

    official = {}
    for line in keys_file.read_text().splitlines():
        name, shape = line.split(" ", 1)
        official[name[len("model."):]] = tuple(int(x) for x in shape.split(")")[0].strip("(").split(",") if x.strip())
    mine = {k: tuple(v.shape) for k, v in SeparationModel(load_yaml_config(hparams)).state_dict().items()}
    assert mine == official


def test_export_roundtrip(tmp_path):
    from safetensors import safe_open
    from tuss.configs import TUSS_SMALL
    from tuss.export import export_model
    from tuss.model import SeparationModel, load_exported

    torch.manual_seed(0)
    model = SeparationModel(TUSS_SMALL).eval()
    path = export_model(model, tmp_path / "model.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        names = set(f.keys())
    assert meta["tuss-codec.kind"] == "tuss" and meta["tuss-codec.format"] == "1"
    cfg = json.loads(meta["tuss-codec.config"])
    assert cfg["model_conf"]["band_edges"][0] == 0 and cfg["model_conf"]["band_edges"][-1] == 257
    assert cfg["model_conf"]["prompts"] == ["speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg"]
    assert "separator.sos_token" in names and "separator.prompts.speech" in names
    assert "separator.cross_prompt_module.0.freq_path.attn.rope.freqs" in names
    back = load_exported(path)
    x = torch.randn(1, 5000)
    with torch.no_grad():
        assert torch.equal(model(x, ["speech", "sfxbg"]), back(x, ["speech", "sfxbg"]))


@pytest.mark.parametrize("fixture,model_rel", [
    ("tuss-small-random", "Tests/Fixtures/tuss-small-random/model.safetensors"),
    ("tuss-small", "Models/tuss-small/model.safetensors"),
])
def test_fixture_matches_model(fixture, model_rel):
    from safetensors import safe_open
    from tuss.make_fixture import sha256
    from tuss.model import load_exported

    case = REPO / "Tests" / "Fixtures" / fixture / "case.safetensors"
    model_path = REPO / model_rel
    if not case.is_file() or not model_path.is_file():
        pytest.skip(f"{case} or {model_path} missing")
    with safe_open(str(case), "pt") as f:
        meta = f.metadata()
        ref = {k: f.get_tensor(k) for k in f.keys()}
    if meta["model_sha256"] != sha256(model_path):
        pytest.skip(f"{fixture}: fixture made from another model version (regenerate with make_fixture.py)")
    model = load_exported(model_path)
    inter = {}
    with torch.no_grad():
        out = model(ref["mixture"][None], [meta["prompts"].split(",")], intermediates=inter)[0]
    assert out.shape == ref["output"].shape == (int(meta["n_src"]), int(meta["length"]))
    err = float((out - ref["output"]).norm() / ref["output"].norm())
    assert err < 1e-5
    assert ref["cross_out"].shape[1] == int(meta["n_src"]) + 1 + int(meta["n_frames"])
