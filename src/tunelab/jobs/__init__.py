"""tunelab.jobs"""
