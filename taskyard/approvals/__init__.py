"""Human approvals of the actions agents propose.

- `risk`: how risky one action is (`RiskRules` read from `risk-rules.yaml`, first match wins)
- `policies`: what each risk level asks for (`ApprovalPolicies` read from
  `approval-policies.yaml`: who may decide, by when, with what checklist)

Both are pure: they read a file once and answer questions, sending nothing. Shipped defaults
live in `defaults/`.
"""
