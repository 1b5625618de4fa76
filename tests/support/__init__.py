"""Helpers shared by the tests: model builders, fake servers, fuzz corpora, job targets."""
