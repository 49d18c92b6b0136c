"""Data: reading labelled sources (CSV, TSV, JSONL, JSON, Parquet, .txt, hub datasets) into validated
splits, label maps, multi-label sets, class imbalance, and long-text windows; `texts` is the one check
of what a usable text is (UTF-8, not blank), which every other input path calls too.

Every row error names the file, row and field. This package imports only the foundation modules
(`errors`, `files`, `config`, `families`, `machine`, `runfolder`); it never tokenises for a model.
"""
