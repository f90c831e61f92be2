"""The PPX FlatBuffers schema (``ppx.fbs``) and the flatc-generated classes the tests read it with."""
