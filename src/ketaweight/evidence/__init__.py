"""The evidence grade and the one-sentence answer, from results (never from a store)."""

from ketaweight.evidence.grade import LEVELS, Answer, Criterion, GradingRules, fmt_num, grade_evidence

__all__ = ["LEVELS", "Answer", "Criterion", "GradingRules", "fmt_num", "grade_evidence"]
