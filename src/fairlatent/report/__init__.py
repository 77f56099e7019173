"""fairlatent.report"""
