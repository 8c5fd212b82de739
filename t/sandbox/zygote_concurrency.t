# concurrency.t, unchanged, through zygote-made sandboxes (parallel creates are
# served one at a time by the zygote): see zygote_isolation.t.
BEGIN { $ENV{FAAS_SANDBOX_ZYGOTE} = 1 }
do './t/sandbox/concurrency.t';
die $@ if $@;
