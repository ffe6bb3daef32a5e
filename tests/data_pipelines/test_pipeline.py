"""Grain assembly: same batches whatever the workers, exact resume through Orbax, epochs,
balance."""

from __future__ import annotations

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from data_pipelines.pipeline import make_train_iterator
from data_pipelines.preprocess import PreprocessConfig
from data_pipelines.synthetic import synthetic_source

CFG = PreprocessConfig(input_size=24, channels=1, augment=True)


@pytest.fixture(scope="module")
def source():
    return synthetic_source("train", seed=0, per_class=6)  # 24 examples


def _take(it, n):
    return [{k: np.asarray(v) for k, v in next(it).items()} for _ in range(n)]


def _same(a, b):
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_thread_count_does_not_change_batches(source, mesh8):
    def run(threads):
        return _take(
            make_train_iterator(
                source, CFG, global_batch_size=8, mesh=mesh8, seed=4, threads=threads
            ),
            4,
        )

    one = run(1)
    assert _same(one, run(3))
    other_seed = _take(make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=5), 4)
    assert not _same(one, other_seed)


def test_process_workers_give_the_thread_batches_and_resume(source, mesh8):
    threads = _take(make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=4), 6)
    it = make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=4, workers=2)
    assert _same(threads[:3], _take(it, 3))
    state = it.get_state()
    it.close()
    resumed = make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=4, workers=2)
    resumed.set_state(state)
    assert _same(threads[3:], _take(resumed, 3))
    resumed.close()


def test_orbax_save_restore_continues_with_the_next_batch(source, mesh8, tmp_path):
    def fresh():
        return make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=1)

    reference = _take(fresh(), 7)
    it = fresh()
    _take(it, 4)
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.save(4, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointSave(it)))
        manager.wait_until_finished()
    _take(it, 2)  # the live iterator moves on; the checkpoint must not
    restored = fresh()
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.restore(
            4, args=ocp.args.Composite(data_iter=grain.checkpoint.CheckpointRestore(restored))
        )
    assert _same(reference[4:], _take(restored, 3))


def test_every_epoch_is_a_new_permutation_of_all_examples(source, mesh8):
    batches = _take(make_train_iterator(source, CFG, global_batch_size=8, mesh=mesh8, seed=0), 6)
    index = np.concatenate([b["index"] for b in batches])
    first, second = index[:24], index[24:]
    assert sorted(first) == sorted(second) == list(range(24))
    assert not np.array_equal(first, second)
    labels = np.concatenate([b["label"] for b in batches])
    assert np.array_equal(labels, [source[i]["label"] for i in index])


def test_class_balanced_sampling(mesh8):
    skewed = synthetic_source("train", seed=0, per_class=8)
    skewed = skewed.filter(lambda r: r.label != 2 or r.patient.endswith("0"))  # 2 DRUSEN of 8
    assert skewed.counts()["DRUSEN"] == 2
    it = make_train_iterator(
        skewed,
        CFG.replace(augment=False),
        global_batch_size=8,
        mesh=mesh8,
        seed=0,
        class_balanced=True,
    )
    labels = np.concatenate([b["label"] for b in _take(it, 4)])  # one balanced epoch: 4 x 8
    assert np.bincount(labels, minlength=4).tolist() == [8, 8, 8, 8]
