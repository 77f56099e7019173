"""fairlatent.metrics"""
