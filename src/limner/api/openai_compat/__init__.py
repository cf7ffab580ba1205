"""OpenAI-compatible routes (``images``, ``speech``): the official ``openai`` package, given
``base_url``, makes images and speech with limner models. Each request is an ordinary limner
job underneath. (No imports here: the API-key middleware imports ``errors`` alone.)"""
