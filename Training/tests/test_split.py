"""Split hygiene: no group in two splits; eval items only use eval-split clips.

Uses the committed Training/data/split.json and Training/eval/set/manifest.json (always present in the
repo) and, when it has been built, the local cache index (Training/data/cache/index.json).
"""
import json
import os
import sys

import numpy as np
import pytest

TRAINING = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TRAINING)

SPLIT = os.path.join(TRAINING, "data", "split.json")
INDEX = os.path.join(TRAINING, "data", "cache", "index.json")
MANIFEST = os.path.join(TRAINING, "eval", "set", "manifest.json")


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_split_file_is_a_function_of_group():
    split = _load(SPLIT)["groups"]
    assert split, "split.json is empty"
    assert set(split.values()) <= {"train", "valid", "eval"}
    # every split is used, eval and valid are minorities
    counts = {s: sum(v == s for v in split.values()) for s in ("train", "valid", "eval")}
    assert counts["eval"] > 0 and counts["valid"] > 0
    assert counts["train"] > counts["eval"] and counts["train"] > counts["valid"]


def test_eval_manifest_uses_only_eval_groups():
    split = _load(SPLIT)["groups"]
    man = _load(MANIFEST)
    assert len(man) >= 150
    for item in man:
        assert len(item["sources"]) == len(item["prompts"]) == len(item["references"])
        for src in item["sources"]:
            assert src, f"{item['task']}/{item['item']}: a source without provenance"
            for clip in src:
                assert split[clip["group"]] == "eval", (item["task"], item["item"], clip["group"])


def test_eval_manifest_layout():
    man = _load(MANIFEST)
    root = os.path.dirname(MANIFEST)
    tasks = {}
    for item in man:
        tasks[item["task"]] = tasks.get(item["task"], 0) + 1
        assert item["sample_rate"] == 16000
        assert os.path.exists(os.path.join(root, item["mixture"]))
        for r in item["references"]:
            assert os.path.exists(os.path.join(root, r))
        names = [os.path.basename(r)[:-4] for r in item["references"]]
        assert len(set(names)) == len(names)
        assert 4.0 <= item["seconds"] <= 10.0
    assert set(tasks) == {"se", "ss", "uss", "mss", "cass"}
    assert min(tasks.values()) >= 30


def test_eval_references_sum_to_mixture():
    sf = pytest.importorskip("soundfile")
    man = _load(MANIFEST)
    root = os.path.dirname(MANIFEST)
    for item in man[:: max(1, len(man) // 25)]:
        mix, sr = sf.read(os.path.join(root, item["mixture"]))
        refs = [sf.read(os.path.join(root, r))[0] for r in item["references"]]
        assert sr == 16000 and all(len(r) == len(mix) for r in refs)
        # 16-bit rounding of each file only
        assert np.abs(np.sum(refs, axis=0) - mix).max() < 1e-3


@pytest.mark.skipif(not os.path.exists(INDEX), reason="cache not built (run Training/data/collect.py)")
def test_cache_index_groups_in_one_split():
    index = _load(INDEX)
    split = _load(SPLIT)["groups"]
    seen = {}
    for c in index["clips"]:
        assert c["split"] == split[c["group"]], c["group"]
        assert seen.setdefault(c["group"], c["split"]) == c["split"], c["group"]


@pytest.mark.skipif(not os.path.exists(INDEX), reason="cache not built (run Training/data/collect.py)")
def test_sampler_rules_and_determinism():
    from data.mixtures import INSTRUMENTS, MixtureSampler

    s = MixtureSampler(INDEX, "train", seconds=2.0, seed=3)
    for i in range(200):
        mix, prompts, srcs = s.sample(i)
        assert mix.dtype == np.float32 and srcs.dtype == np.float32
        assert srcs.shape == (len(prompts), 32000) and 2 <= len(prompts) <= 4
        assert np.abs(mix).max() <= 0.9 + 1e-6
        assert np.allclose(srcs.sum(0), mix, atol=1e-5)
        assert not ("sfx" in prompts and "sfx-mix" in prompts)
        assert not ("music-mix" in prompts and any(p in INSTRUMENTS for p in prompts))
        for p in set(prompts) - {"speech", "sfx"}:
            assert prompts.count(p) == 1
        assert (np.sqrt((srcs ** 2).mean(axis=1)) > 0).all(), prompts   # no empty source
    a, b = s.sample(17), s.sample(17)
    assert a[1] == b[1] and np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2])


@pytest.mark.skipif(not os.path.exists(INDEX), reason="cache not built (run Training/data/collect.py)")
def test_sample_task_kinds_use_eval_clips_and_distinct_speakers():
    from data.mixtures import MixtureSampler

    s = MixtureSampler(INDEX, "eval", seconds=4.0, seed=0)
    expected = {"se": ["speech", "sfx-mix"], "mss": ["drums", "bass", "vocals", "other"],
                "cass": ["speech", "music-mix", "sfx-mix"]}
    for task in ("se", "ss", "uss", "mss", "cass"):
        for i in range(20):
            trace = []
            mix, prompts, srcs = s.sample_task(task, i, trace=trace)
            if task in expected:
                assert prompts == expected[task]
            assert len(trace) == len(prompts) and all(trace)
            assert all(c["split"] == "eval" for t in trace for c in t)
            if task == "ss":
                g1, g2 = ({c["group"] for c in t} for t in trace[:2])
                assert not (g1 & g2), "the two speakers must differ"
            if task == "mss":
                assert len({c["song"] for t in trace for c in t}) == 1, "stems from one song"


def test_template_weights_parse_and_refuse_unknown_templates():
    from data.mixtures import parse_template_weights

    assert parse_template_weights("speech+sfx-mix=6, speech+speech=0") == {("speech", "sfx-mix"): 6.0,
                                                                          ("speech", "speech"): 0.0}
    assert parse_template_weights("") == {}
    for bad in ("sfx-mix+speech=2", "speech+sfx-mix", "speech+sfx-mix=-1", "speech+sfx-mix=nan"):
        with pytest.raises(ValueError):
            parse_template_weights(bad)


@pytest.mark.skipif(not os.path.exists(INDEX), reason="cache not built (run Training/data/collect.py)")
def test_template_weights_change_how_often_a_template_is_drawn():
    from data.mixtures import MixtureSampler

    def share_of_se(**kw):
        s = MixtureSampler(INDEX, "train", seconds=1.0, seed=5, preload=False, **kw)
        rng = np.random.default_rng(0)
        draws = [sorted(s.sample_prompts(rng)) for _ in range(2000)]
        return sum(d == ["sfx-mix", "speech"] for d in draws) / len(draws)

    base = share_of_se()
    focused = share_of_se(template_prob=1.0, template_weights={("speech", "sfx-mix"): 100.0})
    only_others = share_of_se(template_prob=1.0, template_weights={("speech", "sfx-mix"): 0.0})
    assert 0.03 < base < 0.3
    assert focused > 0.85
    assert only_others == 0.0


@pytest.mark.skipif(not os.path.exists(INDEX), reason="cache not built (run Training/data/collect.py)")
def test_make_sampler_serves_recipes_without_the_template_options():
    import argparse

    from tuss.train import make_sampler

    # The masker recipe shares make_sampler and has no template options.
    bare = argparse.Namespace(synthetic=False, index=INDEX, sample_rate=16000, seconds=1.0, seed=0)
    assert make_sampler(bare, "train").template_prob == 0.5
    tuned = argparse.Namespace(**vars(bare), template_prob=0.9, template_weights="speech+speech=0")
    s = make_sampler(tuned, "train")
    assert s.template_prob == 0.9 and ("speech", "speech") not in [t for _, t in s._templates]
    assert make_sampler(tuned, "valid").template_prob == 0.5, "validation keeps the default draw"
