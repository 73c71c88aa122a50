"""The product's own schema migrations: ``NNNN_name.sql`` files beside this one (package data).

Numbers below 1000 belong to the product (0001 the database module, 0100 entities, 0200
vectors, 0300 conversations); users number their own directories from 1000.
"""
