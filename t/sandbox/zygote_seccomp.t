# seccomp.t, unchanged, through zygote-made sandboxes (see
# zygote_isolation.t).
BEGIN { $ENV{FAAS_SANDBOX_ZYGOTE} = 1 }
do './t/sandbox/seccomp.t';
die $@ if $@;
