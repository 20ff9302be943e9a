"""The paper's figures as experiments: one Hydra experiment config per figure (conf/experiment/fig*.yaml)
and the script that draws it from the gathered sweep tables. Entry point: experiments/make_figures.py
(`make figures`)."""
