"""Pure building blocks with no Jupyter imports: the store executor and its lockdown,
identities, parameter templates. Everything that serves data goes through
``p2p2p.core.executor.Executor``."""
