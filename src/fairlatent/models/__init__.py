"""fairlatent.models"""
