"""Writes reviews.csv and tags.csv beside this file: our own hand-written sentences, plus a seeded
recombination of them and of slot-filled templates. No external data set is used. Rerun to reproduce."""
import csv, random, re
from pathlib import Path

rng = random.Random(20261122)
OUT = Path(__file__).resolve().parent

POS_FREE = """An absolute joy from start to finish, I laughed the whole way through.
The battery lasts two full days, which I did not expect at this price.
Staff remembered my name on the second night. Small thing, big difference.
Not bad at all, honestly better than the first one.
I didn't hate it. In fact I kind of loved it.
The soundtrack alone is worth the ticket.
Arrived a day early and packed with care.
Five stars, would order again without thinking twice.
The pasta was perfectly al dente and the sauce tasted homemade.
Setup took five minutes and it just works.
Never thought a puzzle game could make me cry, but here we are.
Customer support fixed my issue in one call. Impressive.
Clean rooms, quiet street, friendly people at the desk.
The writing is sharp and the characters feel real.
Kept me up past midnight turning pages.
Solid build quality, the hinge feels like it will last years.
My kids ask to watch it again every weekend.
The update actually made the app faster, which is rare these days.
Exactly as described, and the refund policy is generous too.
The view from the balcony was stunning and breakfast was great.
Surprisingly good for a sequel nobody asked for.
The controls feel tight and the levels are cleverly designed.
Great value, the coffee is strong and the pastries are fresh.
The driver was polite and the parcel was in perfect shape.
Worth every penny, the screen is bright and sharp.
It is not perfect, but it is the best one I have owned.
Honestly a masterpiece of slow, patient storytelling.
Quick, quiet and cleans better than my old one.
Loved the cast, loved the jokes, loved the ending.
The chef came out to check on us, lovely touch.
I was sceptical but this blender crushes ice like nothing.
The co-op mode is a blast with friends.
Fast shipping, fair price, happy customer.
The hotel upgraded our room for free, what a nice surprise.
Reads like a thriller even though it is history.
Comfortable headphones, I forget I am wearing them.
The app is simple, clean and does what it promises.
The waiter was attentive without hovering.
Gorgeous visuals and a story that sticks with you.
Arrived cold? No, piping hot and delicious.
Fixed my laptop in a day and charged less than quoted.
Did not expect much, walked out grinning.
A warm, funny, generous film.
Its a keeper, the lid seals perfectly and nothing leaks.
The new season is even better than the last.
Helpful staff, spotless gym, good coffee in the lobby.
The keyboard feels great to type on for hours.
Absolutely worth the wait, the finale is superb.
Delivery guy called ahead and was right on time.
Best ramen in town, no contest.
The plot twists actually made sense for once.
The vacuum picks up dog hair like a champ.
Polished, generous with content, and no annoying microtransactions.
Check-in was quick and the bed was heavenly.
Five minutes in I was hooked.
The sound quality blew me away for such a small speaker.
Lovely little cafe, I will definitely be back.
Refund came through in two days, no questions asked.
A rare remake that respects the original.
The camera takes great photos even at night.
Cant stop playing, send help.
Thoughtful, beautifully shot and very moving.
The instructions were clear and assembly was painless.
Our server recommended the fish and it was perfect.
Gets better with every chapter.
This charger is tiny and still charges fast.
Staff went out of their way to help with our luggage.
Brilliant performances all round.
Love how light this laptop is.
The bug I reported was fixed within a week. Thank you.""".splitlines()

NEG_FREE = """Oh great, another update that breaks everything.
The battery died after three hours, what a joke.
I wanted to like it, I really did, but it is a mess.
Cold food, rude staff and a forty minute wait.
Not worth the money, not even close.
The plot makes no sense and the ending is lazy.
Broke the second time I used it.
Customer service hung up on me twice.
The room smelled of smoke and the shower was lukewarm.
Two hours of my life I will never get back.
Crashes every time I open the settings page.
The package arrived crushed and half the items were missing.
Wow, a game that charges you to unlock the ending. Brilliant.
The screen scratches if you so much as look at it.
Overpriced, undercooked and overrated.
Support keeps sending the same copy-paste reply.
I fell asleep halfway through, and I was not even tired.
The app logs me out every single day.
Terrible sound, the bass just rattles.
The driver left my parcel in the rain.
Nothing like the photos, the hotel was falling apart.
Honestly the worst sequel I have ever seen.
Flimsy plastic, the handle snapped in a week.
Waited three weeks for a refund that never came.
The characters are flat and the dialogue is painful.
Laggy, buggy and full of ads.
The soup was salty enough to preserve fish.
Stopped charging after a month.
They cancelled my order without telling me.
Sure, I love paying extra for things that do not work.
The noise from the street kept us up all night.
A boring, bloated mess of a movie.
Instructions missing, screws missing, patience missing.
The keyboard double-types letters constantly.
Our reservation was lost and nobody apologised.
The map is huge and completely empty.
Would give zero stars if I could.
Cheap materials, the seams came apart after one wash.
Took my money and never shipped anything.
It is not terrible, it is just dull and forgettable.
The sync feature deleted half my notes.
Dirty sheets and a broken air conditioner.
The narrator drones on and on.
Arrived late, cold and missing the drinks.
The fan is louder than a jet engine.
The trailer was better than the whole film.
Every patch makes the performance worse.
I did not enjoy a single minute of it.
Hidden fees everywhere, avoid this place.
The remote stopped working on day two.
The waiter rolled his eyes when we asked for water.
Pay to win garbage dressed up as a free game.
Stuck on a loading screen for ten minutes, again.
The book promised insight and delivered filler.
Courier claimed delivery but nothing came.
The mattress sags in the middle after a month.
Slow, clunky and confusing menus.
Too loud, too long, too pleased with itself.
The blender leaked all over my counter.
The front desk ignored us for twenty minutes.
Not what I ordered and they refused to swap it.
The camera app freezes whenever I switch lenses.
The jokes land like bricks.
Charged twice and still waiting for an answer.
The pizza was soggy and the crust was burnt.
Looks nice, falls apart immediately.
I regret buying this, it is useless.
The story drags and the twist is obvious from the start.
Spent more time on hold than using the product.
The hotel wifi barely worked and cost extra.""".splitlines()

THINGS = {
    "film": ["film", "movie", "documentary", "thriller", "comedy"], "tv": ["series", "show", "season", "sitcom"],
    "book": ["novel", "book", "memoir", "audiobook"], "game": ["game", "RPG", "shooter", "puzzle game", "strategy game"],
    "gadget": ["phone", "laptop", "tablet", "smartwatch", "headset", "router", "camera", "speaker"],
    "food": ["restaurant", "burger place", "sushi bar", "bakery", "pizzeria", "cafe"],
    "stay": ["hotel", "hostel", "guesthouse", "resort", "B&B"],
    "service": ["delivery service", "courier", "bank", "internet provider", "support team", "airline"],
    "app": ["app", "banking app", "fitness app", "music app", "photo editor"],
    "home": ["washing machine", "vacuum cleaner", "coffee maker", "blender", "air fryer", "kettle"],
}
POS_ADJ = ["great", "excellent", "wonderful", "fantastic", "superb", "brilliant", "lovely", "impressive", "solid",
           "delightful", "reliable", "charming", "outstanding", "enjoyable", "terrific"]
NEG_ADJ = ["awful", "terrible", "dreadful", "disappointing", "useless", "horrible", "mediocre", "flimsy", "boring",
           "frustrating", "unreliable", "pathetic", "broken", "annoying", "overpriced"]
POS_DETAIL = {"film": "the acting is superb", "tv": "every episode leaves me wanting more", "book": "the prose is gorgeous",
              "game": "the gameplay loop is addictive", "gadget": "it runs fast and the battery holds up",
              "food": "the food was fresh and tasty", "stay": "the room was spotless", "service": "they were quick and friendly",
              "app": "it is fast and intuitive", "home": "it does the job quietly and well"}
NEG_DETAIL = {"film": "the script is a mess", "tv": "the writing fell off a cliff", "book": "the pacing is glacial",
              "game": "it crashes constantly", "gadget": "it overheats and lags", "food": "the food was cold and bland",
              "stay": "the room was filthy", "service": "nobody answered my emails", "app": "it keeps freezing",
              "home": "it broke within a month"}
OPENERS = ["", "Honestly, ", "Well, ", "To be fair, ", "After a week, ", "Long story short: ", "I have to say ",
           "Update: ", "Ok so ", "Bought this for my mum and "]
INTENS = ["", "really ", "very ", "pretty ", "truly ", "so ", "quite ", "seriously "]

def typo(s):
    if rng.random() < 0.12 and len(s) > 20:
        i = rng.randrange(5, len(s) - 5)
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s

def templated(label):
    dom = rng.choice(list(THINGS)); thing = rng.choice(THINGS[dom])
    pos = label == "positive"
    adj = rng.choice(POS_ADJ if pos else NEG_ADJ); other = rng.choice(NEG_ADJ if pos else POS_ADJ)
    detail = (POS_DETAIL if pos else NEG_DETAIL)[dom]
    forms = [
        f"{rng.choice(OPENERS)}the {thing} was {rng.choice(INTENS)}{adj}.",
        f"This {thing} is {rng.choice(INTENS)}{adj}, {detail}.",
        f"{rng.choice(OPENERS)}not {other} at all, {detail}.",
        f"I expected the {thing} to be {other}, but {detail}.",
        f"{detail.capitalize()}. {'Recommended' if pos else 'Avoid'}.",
        f"The {thing} looked {other} in the ads, yet {detail}. {'Pleasantly surprised' if pos else 'Never again'}.",
        f"{'Would' if pos else 'Would not'} recommend this {thing}: {detail}.",
        f"Can't say the {thing} is {other}. {detail.capitalize()}.",
        f"{rng.randint(2, 9)} months in and the {thing} is still {adj}." if pos else
        f"{rng.randint(2, 9)} months in and the {thing} is already {adj}.",
        f"Rating: {rng.choice(['5/5', '4/5', '9/10', '10/10'] if pos else ['1/5', '2/10', '0/10', '1 star'])}. {detail.capitalize()}.",
    ]
    if not pos:
        forms.append(f"Oh sure, {rng.choice(['what a', 'such a'])} {rng.choice(POS_ADJ)} {thing}, {detail}.")
    text = rng.choice(forms).strip()
    return typo(text[0].upper() + text[1:])

def key(t):
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]", " ", t.lower())).strip()

rows, seen = [], set()
def add(t, l):
    k = key(t)
    if k and k not in seen:
        seen.add(k); rows.append((t, l))

for t in POS_FREE: add(t.strip(), "positive")
for t in NEG_FREE: add(t.strip(), "negative")
# free sentences joined pairwise into longer mixed reviews (verdict carried by the last sentence)
for _ in range(120):
    lab = rng.choice(["positive", "negative"])
    first = rng.choice(POS_FREE + NEG_FREE)
    last = rng.choice(POS_FREE if lab == "positive" else NEG_FREE)
    add(f"{first.strip()} {rng.choice(['But overall,', 'Still,', 'In the end,', 'All in all,'])} {last.strip()[0].lower() + last.strip()[1:]}", lab)
while len(rows) < 720:
    lab = "positive" if sum(1 for _, l in rows if l == "positive") <= sum(1 for _, l in rows if l == "negative") else "negative"
    add(templated(lab), lab)
rng.shuffle(rows)
with (OUT / "reviews.csv").open("w", newline="", encoding="utf-8") as f:
    w = csv.writer(f); w.writerow(["text", "label"]); w.writerows(rows)

TAGS = {
    "billing": ["I was charged twice for my order", "the invoice shows the wrong amount", "where is my refund",
                "my card was billed after I cancelled", "the discount code was not applied at checkout",
                "please send me a corrected receipt", "I see a subscription fee I never agreed to"],
    "shipping": ["the parcel is a week late", "tracking has not updated in days", "the courier left it at the wrong address",
                 "delivery was scheduled but nobody came", "the box arrived crushed", "can I change my delivery address"],
    "product_quality": ["the zipper broke after two days", "the blender leaks from the base", "the colour faded after one wash",
                        "the screen has a dead pixel", "the handle feels cheap and wobbly", "the shoes fell apart in a month"],
    "customer_service": ["the agent was rude to me on the phone", "nobody answers my emails", "I waited an hour in the chat queue",
                         "support closed my ticket without reading it", "the staff at the store were very helpful",
                         "I was transferred five times"],
    "app_bug": ["the app crashes when I open my orders", "I cannot log in since the update", "the checkout button does nothing",
                "push notifications arrive twice", "the app freezes on the payment screen", "my saved cart keeps disappearing"],
}
JOIN = [" and ", ". Also ", ", plus ", ". On top of that ", "; "]
SIGN = ["", " Thanks.", " Please help.", " Very frustrating.", " Order #{n}.", " Sent from my phone.", " Regards, {name}."]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jo"]
trows, tseen = [], set()
names = sorted(TAGS)
while len(trows) < 260:
    k = 1 if rng.random() < 0.6 else (2 if rng.random() < 0.8 else 3)
    chosen = sorted(rng.sample(names, k))
    parts = [rng.choice(TAGS[t]) for t in chosen]
    rng.shuffle(parts)
    text = parts[0]
    for p in parts[1:]:
        text += rng.choice(JOIN) + p
    text = text[0].upper() + text[1:] + "." + rng.choice(SIGN).format(n=rng.randint(10000, 99999), name=rng.choice(NAMES))
    kk = key(text)
    if kk not in tseen:
        tseen.add(kk); trows.append((text, "|".join(chosen)))
with (OUT / "tags.csv").open("w", newline="", encoding="utf-8") as f:
    w = csv.writer(f); w.writerow(["text", "labels"]); w.writerows(trows)
print(len(rows), len(trows))
