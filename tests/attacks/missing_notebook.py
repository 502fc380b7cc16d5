"""A submission folder without the notebook."""

from attacks import FULL

STUDENT = "attack_missing_notebook"
DESERVED = dict.fromkeys(FULL, 0)


def build(ctx):
    (ctx.folder / "precision_final_v2.txt").write_text("I forgot to save the notebook\n")
    return None
