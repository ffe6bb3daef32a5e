"""Input pipeline: data set sources, per-example ops, Grain assembly, placement on the mesh.

Imports nothing of ours outside this package (weight metadata is duck-typed).

    from data_pipelines.sources import open_dataset
    from data_pipelines.preprocess import PreprocessConfig, load_image
    from data_pipelines.pipeline import make_train_iterator, make_eval_iterator
    from data_pipelines.device import normalize

    src = open_dataset("oct", data_dir="../shared/data/kermany", split="train",
                       val_fraction=0.1, seed=0, max_per_class=None, drop_leaked=False,
                       on_bad_image="error")         # -> ImageSource (Grain random access)
    len(src); src[i]   # {"path", "label", "patient"} (+ "lesion_box" for synthetic)
    src.class_names; src.records (ExampleRecord: path, label, patient, lesion_box, key)

    cfg = PreprocessConfig.from_metadata(meta, channels=1, augment=False)
    img = load_image(path_or_bytes_or_array, cfg, rng=None)   # uint8 [S, S, C]

    it = make_train_iterator(src, cfg, global_batch_size=64, mesh=mesh, seed=0, workers=0)
    batch = next(it)   # {"image" uint8 [B,S,S,C], "label" int32, "mask" bool, "index" int32}
                       # global jax.Arrays sharded NamedSharding(mesh, P("data"))
    it.get_state(); it.set_state(state)      # Orbax: grain.checkpoint.CheckpointSave(it)
    ev = make_eval_iterator(src, cfg, global_batch_size=64, mesh=mesh)  # finite, padded,
                       # "mask" False / "index" -1 on padding
    x = normalize(batch["image"], meta.mean, meta.std)   # inside jit, float32

Data sets (``datasets.DATASETS``, the data-set table): "oct", "chest_xray",
"chest_xray_pathogen" (bacterial vs viral), "chest_xray_3class", "folder" (any
``{split}/{class}/`` tree), "oct_sample" (bundled real images, no data_dir needed), "synthetic"
(planted lesions with known boxes; in memory, or ``synthetic.write_synthetic(dir)`` +
``data_dir=dir``).

Modules: ``datasets`` (the table: layout, labels, patients and the yes/no questions each
data set declares, e.g. urgent referral), ``naming`` (patient / pathogen rules from file
names), ``layout`` (finding and listing folder trees), ``integrity`` (cheap whole-file checks,
hashes, ``BadImageError``), ``records`` (ExampleRecord, ImageSource), ``splits`` (patient-level
val, limited sets), ``leakage`` (audit and drop_leaked), ``synthetic``, ``preprocess``,
``pipeline``, ``device``, ``tfds_build`` (writing TFDS ArrayRecord builds) and ``prepared``
(reading them).

Commands: ``python -m launch.audit --dataset=oct --data_dir=DIR [--strict]`` (shared patients
and identical files between splits); ``python -m launch.prepare --dataset=oct
--manual_dir=DIR --data_dir=OUT`` (pre-resized ArrayRecord build; ``open_dataset("oct",
data_dir=OUT, ...)`` then reads it); ``python -m launch.benchmark --what=input``.
"""
