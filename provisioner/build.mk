# provisioner/: the sandbox library (sandbox.mk) and the faas-provisioner
# daemon (daemon.mk) keep their rules in separate fragments.
-include provisioner/sandbox.mk
-include provisioner/daemon.mk
-include provisioner/runtimes/runtimes.mk
