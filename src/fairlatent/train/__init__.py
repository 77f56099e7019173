"""fairlatent.train"""
