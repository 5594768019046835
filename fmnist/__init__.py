"""Fashion-MNIST training library: the code the DVC stages in `stages/` share, in packages by role.

core (settings, files, paths, errors) -> data (raw IDX files to splits) -> model (architectures,
device, inference) -> train | report; params reads params.yaml; predict classifies user pictures.
"""
