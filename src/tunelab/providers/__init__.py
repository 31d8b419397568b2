"""Where a job trains: this studio's engine (``local``) or a remote fine-tuning service.

A job names its provider (``provider: NAME``, default ``local``); the URL and
key of every other name come from the settings only (``registry``). The
worker that claims a job runs ``local`` jobs through the engine's supervisor
and the others through ``follow.RemoteSupervisor``, which drives the
provider's client (``openai``: OpenAI's fine-tuning API, spoken by OpenAI and
by any tunelab studio) behind the ``base.Provider`` protocol and records the
remote events, metrics, checkpoints and result in this studio's store
(``recording``). See docs/providers.md.
"""
