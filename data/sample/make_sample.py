"""Writes reviews.csv and tags.csv beside this file from our own hand-written sentences (free_pos.txt,
free_neg.txt) and seeded templates. No external data set is used; rerunning reproduces both files."""
import csv, random, re
from pathlib import Path

rng = random.Random(4242)
OUT = Path(__file__).resolve().parent
HERE = OUT

def norm(t):
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", t.lower())).strip()

# ------------------------------------------------------------------ reviews
free_pos = [l.strip() for l in (HERE / "free_pos.txt").read_text().splitlines() if l.strip()]
free_neg = [l.strip() for l in (HERE / "free_neg.txt").read_text().splitlines() if l.strip()]

D = {  # domain: (items, positive clauses, negative clauses)
 "film": (["film", "movie", "thriller", "romcom", "animated film", "war movie", "horror flick"],
   ["the acting is superb", "the script is witty and sharp", "the cinematography is gorgeous", "the score gave me chills",
    "the pacing never lets up", "the ending is genuinely moving"],
   ["the acting is wooden", "the script is a mess", "the plot makes no sense", "it drags for the whole second hour",
    "the jokes fall completely flat", "the ending is lazy and rushed"]),
 "tv": (["series", "sitcom", "drama", "miniseries", "reality show", "crime show"],
   ["every episode leaves me wanting more", "the cast has real chemistry", "the writing gets better each week",
    "the characters feel like real people", "the finale was perfect"],
   ["the episodes are padded with filler", "the characters are unlikeable", "it went downhill after the pilot",
    "the dialogue is painfully cheesy", "the finale made no sense"]),
 "book": (["novel", "memoir", "cookbook", "short story collection", "biography", "fantasy novel"],
   ["the prose is beautiful", "I could not put it down", "the characters stayed with me for weeks",
    "every chapter ends on a hook", "the research behind it is impressive"],
   ["the prose is clumsy", "I had to force myself to finish it", "the characters are paper thin",
    "nothing happens for two hundred pages", "it is full of typos and errors"]),
 "game": (["game", "RPG", "shooter", "puzzle game", "racing game", "strategy game"],
   ["the controls are tight and responsive", "the levels are cleverly designed", "the story kept me hooked",
    "it runs smoothly even on old hardware", "the multiplayer is a blast"],
   ["it crashes constantly", "the controls feel sluggish", "everything is locked behind microtransactions",
    "the servers are always down", "the missions are repetitive and dull"]),
 "phone": (["phone", "smartphone", "budget phone", "flagship phone"],
   ["the battery easily lasts two days", "the camera takes great photos", "the screen is bright and sharp",
    "it feels fast and smooth", "it charges really quickly"],
   ["the battery dies before lunch", "the camera is blurry indoors", "it lags when switching apps",
    "it overheats during calls", "the screen cracked within a week"]),
 "laptop": (["laptop", "ultrabook", "gaming laptop", "chromebook"],
   ["the keyboard is lovely to type on", "it boots in seconds", "it stays cool and quiet",
    "the battery lasts a full workday", "the build feels premium"],
   ["the fan is unbearably loud", "the trackpad is jumpy", "it gets painfully hot",
    "the hinge started creaking after a month", "it keeps blue screening"]),
 "gadget": (["headset", "soundbar", "smartwatch", "speaker", "e-reader", "fitness tracker", "tablet"],
   ["the sound is rich and clear", "pairing is instant", "the battery lasts for days",
    "it is light and comfortable", "the app that goes with it is simple"],
   ["the sound is tinny", "it keeps disconnecting", "the battery barely lasts a morning",
    "it is uncomfortable after twenty minutes", "the companion app is a buggy mess"]),
 "restaurant": (["restaurant", "pizzeria", "sushi bar", "cafe", "burger place", "noodle bar", "bistro"],
   ["the food was fresh and full of flavour", "the staff were warm and attentive", "the portions were generous",
    "everything came out hot and fast", "the desserts were outstanding"],
   ["the food was cold and bland", "the staff ignored us", "the portions were tiny for the price",
    "we waited over an hour for mains", "the place was dirty"]),
 "hotel": (["hotel", "hostel", "B&B", "resort", "guesthouse"],
   ["the room was spotless", "the bed was incredibly comfortable", "the staff went out of their way to help",
    "breakfast was excellent", "the location was perfect"],
   ["the room was filthy", "the bed was lumpy and creaked", "the front desk was rude",
    "breakfast was stale and overpriced", "the walls were paper thin"]),
 "delivery": (["delivery service", "courier", "grocery delivery", "takeaway app", "parcel service"],
   ["it arrived early and well packed", "the driver was friendly and careful", "tracking was accurate to the minute",
    "nothing was missing or damaged"],
   ["it arrived days late", "the box was crushed", "half the items were missing",
    "the driver never even rang the bell"]),
 "app": (["app", "banking app", "photo editor", "budgeting app", "music app", "messaging app", "note taking app"],
   ["it is fast and easy to use", "the design is clean and simple", "it syncs perfectly across devices",
    "there are no annoying ads", "the latest update made it even better"],
   ["it crashes every time I open it", "the interface is confusing", "it logs me out constantly",
    "it is stuffed with ads", "the latest update broke everything"]),
 "support": (["customer service", "support team", "help desk", "helpline", "live chat"],
   ["they solved my problem on the first call", "the agent was patient and kind", "they refunded me the same day",
    "they actually followed up to check everything was fine"],
   ["they kept me on hold for an hour", "the agent was rude and dismissive", "they never answered my emails",
    "they passed me between departments for days"]),
 "appliance": (["washing machine", "dishwasher", "fridge", "microwave", "vacuum cleaner", "air fryer", "kettle", "coffee machine"],
   ["it is quiet and efficient", "it does the job perfectly", "it was easy to set up",
    "it feels solidly built", "it saves me so much time"],
   ["it is incredibly loud", "it broke after three weeks", "it leaks all over the floor",
    "it feels cheap and flimsy", "it barely does what it is supposed to"]),
}

POS_ADJ = ["great", "brilliant", "excellent", "fantastic", "lovely", "superb", "wonderful", "enjoyable", "impressive", "solid", "delightful", "top notch"]
NEG_ADJ = ["awful", "terrible", "dreadful", "disappointing", "mediocre", "rubbish", "frustrating", "useless", "poor", "annoying", "horrible", "a letdown"]
POS_VERDICT = ["I would recommend it to anyone.", "Would definitely buy again.", "Five stars from me.", "I'm really glad I chose it.",
    "Happy customer here.", "Highly recommended.", "Overall a great experience.", "I'm a fan.", "Can't wait to go back.", "Money well spent."]
NEG_VERDICT = ["I would not recommend it.", "Never again.", "One star.", "I want my money back.", "Stay away.", "Overall a miserable experience.",
    "Really regret it.", "Not worth the money.", "Save yourself the trouble.", "Big disappointment."]
OPEN = ["Okay so", "Honestly,", "Update:", "Quick review:", "Long story short,", "Well,", "Bottom line:", "For what it's worth,", "Gotta say,", "Three weeks in and"]
MINOR_NEG = ["the price is a bit steep", "the packaging was over the top", "it took me a while to get used to it", "the instructions could be clearer",
    "the colour is slightly different from the photos", "the start is a little slow", "it is a little heavier than I'd like", "the name is silly"]
PEOPLE = ["my wife", "my partner", "my teenage son", "my flatmate", "my dad", "a colleague", "my best friend", "my neighbour"]

def a(w):
    return ("an " if w[0].lower() in "aeiou" else "a ") + w

def pick(domain=None):
    d = domain or rng.choice(list(D))
    items, pc, nc = D[d]
    return d, rng.choice(items), pc, nc

def t_simple(pos):
    _, it, pc, nc = pick()
    adj = rng.choice(POS_ADJ if pos else NEG_ADJ)
    clause = rng.choice(pc if pos else nc)
    art = "an" if adj[0] in "aeiou" else "a"
    return rng.choice([f"The {it} is {adj}, {clause}.", f"What {art} {adj} {it}: {clause}.", f"{adj.capitalize()} {it}. {clause.capitalize()}."])

def t_negated(pos):
    # negation flips a wrong-polarity adjective
    _, it, pc, nc = pick()
    if pos:
        adj, clause = rng.choice(NEG_ADJ), rng.choice(pc)
        return rng.choice([f"The {it} is not {adj} at all, in fact {clause}.", f"I wouldn't call this {it} {adj}; {clause}.",
                           f"Far from {adj}, the {it} surprised me, {clause}.", f"Can't say the {it} was {adj}. {clause.capitalize()}."])
    adj, clause = rng.choice(POS_ADJ), rng.choice(nc)
    return rng.choice([f"The {it} is not {adj} at all, {clause}.", f"I wouldn't call this {it} {adj}; {clause}.",
                       f"Far from {adj}, the {it} let me down, {clause}.", f"Can't say the {it} was {adj}. {clause.capitalize()}."])

def t_expect(pos):
    _, it, pc, nc = pick()
    if pos:
        return f"I expected the {it} to be {rng.choice(NEG_ADJ)}, but {rng.choice(pc)}."
    return f"I expected the {it} to be {rng.choice(POS_ADJ)}, but {rng.choice(nc)}."

def t_sarcasm(pos):
    if pos:
        return None
    _, it, pc, nc = pick()
    adj = rng.choice(["wonderful", "brilliant", "fantastic", "amazing", "lovely", "stellar"])
    return rng.choice([f"Oh great, what {a(adj)} {it}, {rng.choice(nc)}.", f"Wow, truly {adj}. The {it} is so good that {rng.choice(nc)}.",
                       f"Just {adj}. Paid full price and {rng.choice(nc)}.", f"Yeah, {a(adj)} {it}, if you enjoy the fact that {rng.choice(nc)}."])

def t_mixed(pos):
    # one aspect against the verdict, then a clear overall verdict
    _, it, pc, nc = pick()
    if pos:
        return rng.choice([f"Sure, {rng.choice(MINOR_NEG)}, but {rng.choice(pc)} and overall I love this {it}.",
                           f"The {it} has flaws, {rng.choice(MINOR_NEG)}. Still, {rng.choice(pc)}. {rng.choice(POS_VERDICT)}"])
    return rng.choice([f"Okay, {rng.choice(pc)}, but {rng.choice(nc)} and overall I can't stand this {it}.",
                       f"The {it} has its moments, {rng.choice(pc)}. Still, {rng.choice(nc)}. {rng.choice(NEG_VERDICT)}"])

def t_long(pos):
    d, it, pc, nc = pick()
    a, b = rng.sample(pc if pos else nc, 2)
    o = rng.choice(MINOR_NEG) if pos else rng.choice(pc)
    who = rng.choice(PEOPLE)
    if pos:
        return (f"{rng.choice(OPEN)} I picked this {it} after {who} kept going on about it, and I was honestly expecting to be let down. "
                f"I was wrong. {a.capitalize()}, and {b}. If I had to complain, {o}, but that is a small thing. {rng.choice(POS_VERDICT)}")
    return (f"{rng.choice(OPEN)} I picked this {it} after {who} kept going on about it, and I was honestly expecting to love it. "
            f"I didn't. {a.capitalize()}, and {b}. To be fair, {o}, but that does not make up for the rest. {rng.choice(NEG_VERDICT)}")

def t_rating(pos):
    _, it, pc, nc = pick()
    r = rng.choice(["4/5", "5/5", "9/10", "8/10", "4 stars", "5 stars"] if pos else ["1/5", "2/5", "2/10", "3/10", "1 star", "2 stars"])
    return f"{r} for the {it}. {rng.choice(pc if pos else nc).capitalize()}."

def t_short(pos):
    _, it, _, _ = pick()
    adj = rng.choice(POS_ADJ if pos else NEG_ADJ)
    return rng.choice([f"Really {adj} {it}.", f"{adj.capitalize()} {it}, honestly.", f"Such {'an' if adj[0] in 'aeiou' else 'a'} {adj} {it}."])

def t_didnt(pos):
    _, it, pc, nc = pick()
    if pos:
        return rng.choice([f"I didn't hate the {it}. Actually {rng.choice(pc)}.", f"Never thought I'd enjoy {a(it)} this much, {rng.choice(pc)}."])
    return rng.choice([f"I didn't enjoy the {it} at all, {rng.choice(nc)}.", f"Never thought {a(it)} could be this bad, {rng.choice(nc)}."])

TEMPLATES = [(t_simple, 3), (t_negated, 3), (t_expect, 2), (t_sarcasm, 2), (t_mixed, 3), (t_long, 2), (t_rating, 1), (t_short, 1), (t_didnt, 2)]
funcs = [f for f, w in TEMPLATES for _ in range(w)]

rows, seen = [], set()
def add(text, label):
    k = norm(text)
    if k and k not in seen:
        seen.add(k); rows.append((text, label)); return True
    return False

for t in free_pos: assert add(t, "positive"), t
for t in free_neg: assert add(t, "negative"), t
TARGET = 704
npos = sum(l == "positive" for _, l in rows); nneg = len(rows) - npos
while npos < TARGET // 2 or nneg < TARGET // 2:
    pos = npos < TARGET // 2 and (nneg >= TARGET // 2 or rng.random() < 0.5)
    t = rng.choice(funcs)(pos)
    if t and add(t, "positive" if pos else "negative"):
        npos += pos; nneg += (not pos)
rng.shuffle(rows)
with open(OUT / "reviews.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["text", "label"]); w.writerows(rows)

# ------------------------------------------------------------------ tags
PHR = {
 "billing": ["I was charged twice for order {n}", "my card was billed after I cancelled my subscription", "the invoice shows the wrong amount",
    "I still haven't received the refund you promised", "there's a fee on my statement I never agreed to", "my discount code wasn't applied at checkout",
    "you charged me for the premium plan but I'm on the basic one", "the VAT on my receipt is wrong", "my payment went through but the order says unpaid",
    "I need a copy of my invoice for {m}", "the price went up without any notice", "I was billed in dollars instead of euros"],
 "shipping": ["my parcel hasn't arrived after {d} days", "the tracking number doesn't work", "the courier left the package at the wrong address",
    "the box arrived crushed", "order {n} is stuck in customs", "the delivery was marked as delivered but nothing came",
    "I need to change my delivery address", "the express shipping took over a week", "only half my order was delivered",
    "the driver never turned up in the delivery slot", "I'd like to know when order {n} will ship", "the parcel went back to the depot"],
 "product_quality": ["the blender stopped working after a week", "the jacket's zip broke the first time I used it", "the screen has a dead pixel",
    "the headphones crackle on the left side", "the shoes fell apart within a month", "the mug came with a crack in the handle",
    "the charger gets dangerously hot", "the colour looks nothing like the photos", "the stitching is coming loose on the bag",
    "the kettle leaks from the bottom", "the battery on the speaker only lasts an hour", "the chair wobbles even with all the screws tight"],
 "customer_service": ["nobody has replied to my emails for {d} days", "the agent on the phone was rude to me", "I was on hold for over an hour",
    "your chat agent closed the conversation without answering", "I was promised a callback that never happened",
    "I've explained my problem to four different people", "the store staff refused to help me", "my complaint ticket was closed without a reply",
    "I'd like to speak to a manager about how I was treated", "your support team keeps sending copy paste answers",
    "the support line is never open when the website says it is", "the manager at the branch was very dismissive"],
 "app_bug": ["the app crashes every time I open the basket", "I can't log in on the app, it just spins", "the app logs me out every few minutes",
    "the checkout button in the app does nothing", "push notifications show orders that aren't mine", "the app freezes when I upload a photo",
    "the latest app update deleted my saved addresses", "the app shows a blank white screen on Android", "search in the app returns no results at all",
    "the dark mode in the app makes the text invisible", "the app keeps saying no internet connection when my wifi is fine",
    "the password reset link in the app is broken"],
}
GREET = ["", "Hi, ", "Hello, ", "Hi there, ", "Good morning, ", "Hey, ", "Dear team, "]
JOIN = [" and ", ". Also, ", ". On top of that, ", ", and ", ". Plus ", ". And now "]
CLOSE = ["", " Please help.", " Can you sort this out?", " Thanks.", " This is really frustrating.", " What are my options?", " Please advise.", " I'd appreciate a quick reply."]
MONTHS = ["March", "April", "May", "June", "last month", "my tax return"]

HAND_TAGS = [
 ("The app crashed during checkout and now I've been charged but have no order.", "app_bug|billing"),
 ("Your courier dropped the box and the lamp inside is broken.", "shipping|product_quality"),
 ("Customer service told me the refund was sent weeks ago but my bank shows nothing.", "customer_service|billing"),
 ("Where is my order? It's been two weeks.", "shipping"),
 ("Why was I charged a cancellation fee?", "billing"),
 ("The app won't let me track my parcel, the tracking page just crashes, and it's already late.", "app_bug|shipping"),
 ("Your phone line hangs up after the menu. I just want to talk to a person.", "customer_service"),
 ("The vacuum I got is louder than a plane and the suction is weak.", "product_quality"),
 ("I reported the broken toaster three times and nobody from support ever got back to me.", "product_quality|customer_service"),
 ("Login on the app fails with error 500.", "app_bug"),
 ("The sofa arrived two weeks late, the leg was cracked, and the driver was rude on the phone when I mentioned it.", "shipping|product_quality|customer_service"),
 ("Double charged, order never shipped, and the app shows it as cancelled.", "billing|shipping|app_bug"),
 ("The refund button in the app gives an error and I still haven't got my money back.", "app_bug|billing"),
 ("Great product, but it took three weeks to get here.", "shipping"),
 ("The agent was lovely but couldn't explain the extra charge on my bill.", "customer_service|billing"),
 ("The paint on the bike is already peeling.", "product_quality"),
 ("Subscription renewed even though I turned off auto renew in the app, which clearly doesn't save the setting.", "billing|app_bug"),
 ("Nobody answers the live chat, and my package is still missing.", "customer_service|shipping"),
 ("The replacement you sent for my faulty heater is faulty too.", "product_quality"),
 ("App update wiped my loyalty points.", "app_bug"),
]

tag_rows, tseen = [], set()
def tadd(text, labels):
    k = norm(text)
    if k not in tseen:
        tseen.add(k); tag_rows.append((text, labels)); return True
    return False

for t, l in HAND_TAGS: assert tadd(t, l)
tags = list(PHR)
counts = {t: 0 for t in tags}
for _, l in HAND_TAGS:
    for t in l.split("|"): counts[t] += 1
while len(tag_rows) < 260:
    k = rng.choices([1, 2, 3], weights=[5, 4, 1])[0]
    chosen = sorted(rng.sample(tags, k), key=tags.index)
    parts = [rng.choice(PHR[t]).format(n=rng.randint(10000, 99999), d=rng.choice([3, 5, 7, 10, 12, 14]), m=rng.choice(MONTHS)) for t in chosen]
    body = parts[0]
    for p in parts[1:]:
        body += rng.choice(JOIN) + p
    g = rng.choice(GREET)
    text = g + body
    text = text[0].upper() + text[1:] if not g else text
    text = text.rstrip(".") + "." + rng.choice(CLOSE)
    if tadd(text, "|".join(chosen)):
        for t in chosen: counts[t] += 1
rng.shuffle(tag_rows)
with open(OUT / "tags.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["text", "labels"]); w.writerows(tag_rows)
print(len(rows), len(tag_rows), counts)
