"""Phrase templates the simulator writes "why" answers from: per reason and sentiment, en/sv/pl."""

from __future__ import annotations

REASON_IDS = (
    "price", "billing", "delivery", "product_quality", "customer_support",
    "usability", "reliability", "features", "competitor", "other",
)

NEGATIVE = {
    "price": {
        "en": ["Far too expensive for what I get.", "The price went up again and nobody told me."],
        "sv": ["Alldeles för dyrt för vad jag får.", "Priset har höjts igen utan förvarning."],
        "pl": ["Zdecydowanie za drogo jak na to, co dostaję.", "Znowu podnieśli cenę bez uprzedzenia."],
    },
    "billing": {
        "en": ["I was charged twice on my last invoice.", "The bill is wrong every month."],
        "sv": ["Jag blev dubbeldebiterad på senaste fakturan.", "Fakturan är fel varje månad."],
        "pl": ["Obciążyli mnie dwa razy na ostatniej fakturze.", "Rachunek jest co miesiąc błędny."],
    },
    "delivery": {
        "en": ["The router arrived two weeks late.", "Installation was postponed three times."],
        "sv": ["Routern kom två veckor för sent.", "Installationen sköts upp tre gånger."],
        "pl": ["Router przyszedł dwa tygodnie za późno.", "Instalację przekładano trzy razy."],
    },
    "product_quality": {
        "en": ["The equipment feels cheap and broke quickly.", "Picture quality is poor."],
        "sv": ["Utrustningen känns billig och gick sönder snabbt.", "Bildkvaliteten är dålig."],
        "pl": ["Sprzęt jest tandetny i szybko się zepsuł.", "Jakość obrazu jest słaba."],
    },
    "customer_support": {
        "en": ["Support kept me on hold for an hour.", "I had to call three times to get an answer."],
        "sv": ["Kundtjänst lät mig vänta i en timme.", "Jag fick ringa tre gånger för att få svar."],
        "pl": ["Obsługa klienta kazała mi czekać godzinę.", "Musiałem dzwonić trzy razy, żeby dostać odpowiedź."],
    },
    "usability": {
        "en": ["The app is confusing and I cannot find anything.", "Logging in is a nightmare."],
        "sv": ["Appen är rörig och jag hittar ingenting.", "Att logga in är en mardröm."],
        "pl": ["Aplikacja jest nieczytelna i nic nie mogę znaleźć.", "Logowanie to koszmar."],
    },
    "reliability": {
        "en": ["The internet drops out every evening.", "Another outage this week, third one this month."],
        "sv": ["Internet går ner varje kväll.", "Ännu ett avbrott den här veckan, tredje denna månad."],
        "pl": ["Internet zrywa się co wieczór.", "Kolejna awaria w tym tygodniu, trzecia w tym miesiącu."],
    },
    "features": {
        "en": ["Still no option to pause my plan.", "Missing basic features other providers have."],
        "sv": ["Fortfarande går det inte att pausa abonnemanget.", "Saknar grundläggande funktioner som andra har."],
        "pl": ["Nadal nie można zawiesić abonamentu.", "Brakuje podstawowych funkcji, które mają inni."],
    },
    "competitor": {
        "en": ["Other providers offer the same for half the price.", "A competitor gave me a much better offer."],
        "sv": ["Andra operatörer erbjuder samma sak till halva priset.", "En konkurrent gav mig ett mycket bättre erbjudande."],
        "pl": ["Inni operatorzy oferują to samo za pół ceny.", "Konkurencja dała mi dużo lepszą ofertę."],
    },
    "other": {
        "en": ["Not happy overall.", "Things just keep going wrong."],
        "sv": ["Inte nöjd överlag.", "Det blir bara fel hela tiden."],
        "pl": ["Ogólnie nie jestem zadowolony.", "Ciągle coś jest nie tak."],
    },
}

NEUTRAL = {
    "price": {"en": "The price is okay but could be lower.", "sv": "Priset är okej men kunde vara lägre.",
              "pl": "Cena jest w porządku, ale mogłaby być niższa."},
    "billing": {"en": "The invoice was a bit hard to read.", "sv": "Fakturan var lite svår att förstå.",
                "pl": "Faktura była trochę niezrozumiała."},
    "delivery": {"en": "Delivery took a few days longer than promised.", "sv": "Leveransen tog några dagar längre än utlovat.",
                 "pl": "Dostawa trwała kilka dni dłużej niż obiecano."},
    "product_quality": {"en": "The equipment is fine, nothing special.", "sv": "Utrustningen är okej, inget speciellt.",
                        "pl": "Sprzęt jest w porządku, nic specjalnego."},
    "customer_support": {"en": "Support solved it in the end, but it took a while.",
                         "sv": "Kundtjänst löste det till slut, men det tog tid.",
                         "pl": "Obsługa w końcu to rozwiązała, ale trwało to długo."},
    "usability": {"en": "The app works but the menus are clumsy.", "sv": "Appen fungerar men menyerna är klumpiga.",
                  "pl": "Aplikacja działa, ale menu jest niewygodne."},
    "reliability": {"en": "The connection is mostly stable, with the odd drop.",
                    "sv": "Uppkopplingen är mest stabil, med enstaka avbrott.",
                    "pl": "Połączenie jest raczej stabilne, z rzadkimi przerwami."},
    "features": {"en": "Would like more options in my plan.", "sv": "Skulle vilja ha fler val i abonnemanget.",
                 "pl": "Chciałbym mieć więcej opcji w abonamencie."},
    "competitor": {"en": "Comparable to other providers.", "sv": "Ungefär som andra operatörer.",
                   "pl": "Podobnie jak u innych operatorów."},
    "other": {"en": "It is alright.", "sv": "Det är helt okej.", "pl": "Jest w porządku."},
}

POSITIVE = {
    "en": ["Great service, everything just works.", "Very happy, fast internet and friendly staff.",
           "Support sorted my problem in minutes, thank you!", "Good value for money."],
    "sv": ["Superbra service, allt fungerar.", "Mycket nöjd, snabbt internet och trevlig personal.",
           "Kundtjänst löste mitt problem på några minuter, tack!", "Prisvärt."],
    "pl": ["Świetna obsługa, wszystko działa.", "Bardzo zadowolony, szybki internet i miła obsługa.",
           "Obsługa rozwiązała mój problem w kilka minut, dziękuję!", "Dobry stosunek jakości do ceny."],
}

CHURN_INTENT = {
    "en": ["I am cancelling my contract.", "I will be leaving as soon as I can."],
    "sv": ["Jag säger upp mitt abonnemang.", "Jag tänker byta operatör så fort jag kan."],
    "pl": ["Rezygnuję z usług.", "Wypowiadam umowę przy pierwszej okazji."],
}

COMPETITORS = {"en": ("Vodafone", "Sky", "Telia"), "sv": ("Telia", "Tele2", "Telenor"),
               "pl": ("Orange", "Play", "Plus")}

SWITCHING = {
    "en": "I am switching to {competitor}.",
    "sv": "Jag byter till {competitor}.",
    "pl": "Przechodzę do {competitor}.",
}
