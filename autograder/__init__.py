"""Autograder of the dnnkernels course: hidden checks, sandboxed runner, grading driver.

See autograder/README.md.
"""
