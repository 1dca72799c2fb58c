"""Word lists for word-format needle keys and values ("amber-lantern").

Two words joined by a hyphen rarely occur in essays or Wikipedia text, so a key names exactly one
needle; 137 x 125 pairs leave about 8,500 for each of the train and test needle spaces.
"""

from __future__ import annotations

ADJECTIVES: tuple[str, ...] = tuple("""
amber ancient arctic ashen autumn azure balmy bashful bitter blazing bleak blissful bold brassy
breezy brisk bronze bubbly burly calm candid careful cheeky chilly cloudy clumsy coastal cobalt
cosmic cozy crimson crisp curious dainty dapper dazzling dewy dizzy drowsy dusky dusty eager
earthy elfin emerald fancy feisty fiery fluffy foggy fragrant frosty frozen fuzzy gentle giddy
gilded glassy gleaming glossy golden graceful grumpy hazy hidden hollow humble icy indigo ivory
jagged jolly jovial lavish lazy leafy lilac lively lofty lucky lunar marble mellow merry misty
modest mossy muddy nimble noble olive opal pale peppery placid plucky plush polar prickly proud
quaint quiet radiant rosy rowdy rugged rustic rusty sandy scarlet shaggy shiny silky silver
sleepy slender smoky snowy solar sparkling speckled spicy stormy sturdy sunny swift tawny
thorny timid twinkling velvet violet vivid wary wintry witty zesty
""".split())

NOUNS: tuple[str, ...] = tuple("""
acorn anchor anvil apricot arrow badger balloon banjo barrel beacon beetle biscuit blossom
bonnet boulder bucket buffalo button cactus canoe canyon carousel castle cathedral cello
chestnut chimney cobbler comet compass cookie coral cricket crystal cupboard dagger dolphin
donkey dragon drum eagle easel ember falcon feather fern fiddle flamingo flute fountain fox
galaxy garnet gazebo geyser glacier goblet gondola harbor harp hedgehog heron hammock igloo
jackal jasmine kayak kettle kiwi ladder lagoon lantern lemur lighthouse lobster locket lotus
magnet mango marmot meadow mitten monsoon mosaic muffin nectar nugget oasis orchid otter
paddle pebble pelican pepper pickle pigeon pinecone pretzel pumpkin quill rabbit raven
saddle sapphire scarecrow seashell sparrow spindle squirrel teapot thimble thistle tiger
toucan trumpet tulip turnip umbrella violin volcano walnut walrus whistle willow windmill
""".split())
