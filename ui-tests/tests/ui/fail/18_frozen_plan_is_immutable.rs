// A compiled plan is frozen by its type: no `&mut` path leads into it.
use hcs::plan::compiler::FrozenWellPlan;

fn tamper(plan: &mut FrozenWellPlan) {
    plan.spill_reason = None;
    plan.steps.clear();
}

fn main() {}
