"""Conversations: the SQLite store, chat sessions, prompt building and context policy."""
