"""Serving: load base models and adapters and generate replies (chat, OpenAI-compatible API).

Import from the submodules (``tunelab.serving.generation``); this package stays
light so importing it never pulls in torch.
"""
