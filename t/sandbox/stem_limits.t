# limits.t, unchanged, through stem cells (docs/DESIGN.md section 6): Faas::Sandbox
# in stem mode creates each sandbox as a stem cell of the spec's limits,
# specialises it (faas-sandbox create --stem) and asserts that it is one.
BEGIN { $ENV{FAAS_SANDBOX_STEM} = 1 }
do './t/sandbox/limits.t';
die $@ if $@;
