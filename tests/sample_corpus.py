"""A tiny WikiText-style corpus (tokenized, with a heading) written for the corpus and Ray tests."""

LINES = [
    " = Notes = ",
    " The small boat drifted past the old mill , and the miller waved . ",
    " Rain fell on the city for three days , and the river rose slowly . ",
    " She opened the letter , read it twice , and put it in the drawer . ",
    " The train to the coast left at noon , half empty as usual . ",
    " A cat slept in the window while the radio played old songs . ",
    " The old map showed a road that no longer ran through the hills . ",
    " Two boys sold lemonade on the corner until the sun went down . ",
    " The museum opened a new wing for paintings from the north . ",
]
