"""The membership-inference attacks, one module each (registry kind ``mia``).

The thirteen of the membership-inference benchmark (Niu et al., MIBench) by
its names, plus RMIA:

==========================  ==========================================  ===============
module                      attack                                      target access
==========================  ==========================================  ===============
``nn_attack``               NN attack (Shokri et al. 2017)              probabilities
``loss_threshold``          loss threshold (Yeom et al. 2018)           probabilities
``label_only``              label-only (Choquette-Choo et al. 2021)     label
``top3_nn``                 top-3 NN (Salem et al. 2019)                top-k (3)
``top1_threshold``          top-1 threshold (Salem et al. 2019)         top-k (1)
``blindmi``                 BlindMI-Diff (Hui et al. 2021)              probabilities
``top2_true``               top-2 + true-label confidence               probabilities
``risk_score``              privacy risk score (Song & Mittal 2021)     probabilities
``shapley``                 Shapley values, SHAPr (Duddu et al. 2022)   probabilities
``ppv``                     PPV attack, Merlin (Jayaraman et al. 2021)  probabilities
``calibrated``              calibrated score (Watson et al. 2022)       probabilities
``distillation``            distillation-based (Liu et al. 2022)        probabilities
``lira``                    LiRA online / offline (Carlini et al. 2022) probabilities
``rmia``                    RMIA online / offline (Zarifzadeh 2024)     probabilities
==========================  ==========================================  ===============
"""
