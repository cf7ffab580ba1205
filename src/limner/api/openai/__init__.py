"""OpenAI-compatible routes (``images``, ``speech``): the official ``openai`` package, given
``base_url``, makes images and speech with limner models. Each request is an ordinary limner
job underneath; errors are rendered in OpenAI's shape by ``limner.api.errors``."""
