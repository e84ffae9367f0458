"""The digital round (docs/round.md): per resident, what the sensors say now, a verdict with
its reasons in words, and the digital checks night staff record instead of opening the door."""
