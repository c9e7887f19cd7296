"""Training any family: the Trainer (optimizer, EMA, schedule, time limit, resume), its checkpoints, image rows
for previews, the training crops and degradations, and the `infscene train` command. A family brings its
Objective (models/<family>/training.py); this package never imports a family."""
