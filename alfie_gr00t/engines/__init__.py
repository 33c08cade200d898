"""Inference backends behind one interface (`base.Engine`); `registry.create_engine` picks one."""
