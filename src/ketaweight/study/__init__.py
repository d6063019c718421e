"""The study: the target-trial protocol (TOML spec), the covariate and mediator catalogue, and the
cohort built from the store as a chain of counted steps."""

from ketaweight.study.spec import Study, builtin_studies, load_study

__all__ = ["Study", "builtin_studies", "load_study"]
