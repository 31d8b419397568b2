"""Turn a finished run into things to share: model cards and Hub uploads."""
