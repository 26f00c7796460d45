"""Referral matching: rules as data (rules.yaml), a pure engine that explains every choice, and the
consent policy deciding what each referral carries. See docs/matching.md."""
from services.referral.matching.conditions import CaseView, Geography
from services.referral.matching.engine import Match, Outcome, SkipReason, Step, StepKind, explain, match
from services.referral.matching.loader import DEFAULT_RULES, RuleBook
from services.referral.matching.rules import RulesError, RuleSet, parse_rules, validate_rules

__all__ = ["DEFAULT_RULES", "CaseView", "Geography", "Match", "Outcome", "RuleBook", "RuleSet", "RulesError",
           "SkipReason", "Step", "StepKind", "explain", "match", "parse_rules", "validate_rules"]
