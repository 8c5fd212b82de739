# provisioner/: the faas-provisioner daemon (daemon.mk); the sandbox library
# it links lives in sandbox/, the runtimes in runtimes/.
include provisioner/daemon.mk
