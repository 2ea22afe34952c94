"""Regulatory duties: KYC, responsible gaming (limits, exclusions, reality checks), AML risk
flags and network access rules. Reaches payments and play only through their hooks."""
