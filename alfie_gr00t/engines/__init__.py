"""Inference backends behind one interface (`base.Engine`); `registry.create_engine` picks one.
The GPU machine's side. Import wire/ (decoded observations) and the base; never server/, client/ or nodes/."""
