# limits.t, unchanged, through zygote-made sandboxes: Faas::Sandbox in zygote
# mode configures "zygote": true, runs a zygote per config, and asserts
# that every sandbox was forked from it (not made by the fresh fallback).
BEGIN { $ENV{FAAS_SANDBOX_ZYGOTE} = 1 }
do './t/sandbox/limits.t';
die $@ if $@;
