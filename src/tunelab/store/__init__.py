"""tunelab.store"""
