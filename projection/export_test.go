package projection

// SetRebuildHook has r's rebuilds call f at their steps: "page" after each
// page the catch-up applies, "swap" before they swap their tables in.
func (r *Runner) SetRebuildHook(f func(step string)) { r.rebuildHook = f }
