"""fairlatent.pipeline"""
