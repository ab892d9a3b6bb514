"""Synthetic multilingual support text for the benchmark seed.

Messages are built from templates with slots (order numbers, product names, amounts), so
full-text search has the selectivity of real data: a few very common words ("refund",
"order"), many mid-frequency ones, product names that match a fraction of a percent of
messages and order numbers that match one thread."""

from __future__ import annotations

import random

LANGUAGES = ("en", "es", "pt", "fr", "de")
LANGUAGE_WEIGHTS = (50, 20, 10, 10, 10)

# Made-up product names: each one matches ~0.3% of the messages.
_STEMS = [
    "zephyr",
    "nimbus",
    "quokka",
    "orbit",
    "lumen",
    "vortex",
    "aurora",
    "falcon",
    "cobalt",
    "ember",
    "glacier",
    "harbor",
    "ionic",
    "jasper",
    "kestrel",
    "lagoon",
    "magnet",
    "nebula",
    "onyx",
    "pixel",
    "quartz",
    "raven",
    "sierra",
    "talon",
    "umbra",
    "vertex",
    "willow",
    "xenon",
    "yonder",
    "zenith",
]
PRODUCTS = tuple(f"{stem} {suffix}" for stem in _STEMS for suffix in ("mini", "pro", "max"))
PRODUCT_WORDS = tuple(_STEMS)

TAGS = (
    "billing",
    "shipping",
    "returns",
    "login",
    "vip",
    "bug",
    "feature-request",
    "cancellation",
    "warranty",
    "payments",
)

_T: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "hello": ("Hi,", "Hello,", "Good morning,", "Hey there,", "Dear support team,"),
        "issue": (
            "I was charged twice for order {order} and I would like a refund.",
            "My {product} arrived broken, the screen is cracked.",
            "Where is my package? Order {order} still shows as processing.",
            "I cannot log in, the password reset email never arrives.",
            "The invoice for order {order} has the wrong billing address.",
            "Please cancel my subscription before the next renewal.",
            "How do I change the shipping address for order {order}?",
            "The {product} stopped charging after two days.",
            "I returned the {product} three weeks ago and still have no refund.",
            "The app crashes every time I open my account settings.",
            "Can I upgrade my plan and keep my current discount?",
            "The tracking number for order {order} does not work.",
            "I received the wrong colour of {product}.",
            "My card was declined but the payment of {amount} EUR went through.",
        ),
        "detail": (
            "I already tried restarting the app.",
            "This is the second time this happens.",
            "I attached a photo of the box.",
            "My account email is the same as this one.",
            "I need this solved before Friday.",
            "The delivery was supposed to arrive yesterday.",
            "",
        ),
        "bye": ("Thanks.", "Thank you!", "Best regards.", "Cheers.", "Waiting for your answer."),
        "reply": (
            "Thanks for reaching out! I have checked order {order} and issued a refund of "
            "{amount} EUR.",
            "Sorry about that. A replacement {product} is on its way.",
            "I have sent you a new password reset link, please check your spam folder.",
            "Your subscription is cancelled; you will not be charged again.",
            "I updated the shipping address for order {order}.",
            "Could you send us a photo of the serial number of your {product}?",
            "The invoice has been corrected and sent to your email.",
            "Our courier confirms the package will be delivered tomorrow.",
        ),
    },
    "es": {
        "hello": ("Hola,", "Buenos días,", "Buenas tardes,", "Estimado equipo,"),
        "issue": (
            "Me han cobrado dos veces el pedido {order}, quiero un reembolso.",
            "Mi {product} llegó roto, la pantalla está rota.",
            "¿Dónde está mi paquete? El pedido {order} sigue en preparación.",
            "No puedo iniciar sesión, no me llega el correo para cambiar la contraseña.",
            "La factura del pedido {order} tiene la dirección equivocada.",
            "Quiero cancelar mi suscripción antes de la renovación.",
            "Devolví el {product} hace tres semanas y no tengo el reembolso.",
            "El número de seguimiento del pedido {order} no funciona.",
        ),
        "detail": (
            "Ya reinicié la aplicación.",
            "Es la segunda vez que pasa.",
            "Necesito una solución urgente.",
            "",
        ),
        "bye": ("Gracias.", "Un saludo.", "Muchas gracias.", "Quedo a la espera."),
        "reply": (
            "Gracias por escribirnos. He revisado el pedido {order} y hemos hecho un "
            "reembolso de {amount} EUR.",
            "Lo sentimos, le enviamos un {product} nuevo.",
            "Le he enviado un nuevo enlace para cambiar la contraseña.",
            "La factura está corregida y se la hemos enviado por correo.",
        ),
    },
    "pt": {
        "hello": ("Olá,", "Bom dia,", "Boa tarde,"),
        "issue": (
            "Fui cobrado duas vezes pelo pedido {order}, quero o reembolso.",
            "O meu {product} chegou partido.",
            "Onde está a minha encomenda? O pedido {order} continua em processamento.",
            "Não consigo entrar na conta, o email de recuperação da senha não chega.",
            "A fatura do pedido {order} está errada.",
            "Quero cancelar a minha assinatura.",
        ),
        "detail": ("Já reiniciei o aplicativo.", "É urgente.", ""),
        "bye": ("Obrigado.", "Obrigada!", "Cumprimentos."),
        "reply": (
            "Obrigado pelo contacto. O reembolso de {amount} EUR do pedido {order} foi feito.",
            "Pedimos desculpa, um novo {product} já foi enviado.",
            "Enviámos um novo link para redefinir a senha.",
        ),
    },
    "fr": {
        "hello": ("Bonjour,", "Bonsoir,", "Madame, Monsieur,"),
        "issue": (
            "J'ai été débité deux fois pour la commande {order}, je veux un remboursement.",
            "Mon {product} est arrivé cassé.",
            "Où est mon colis ? La commande {order} est toujours en préparation.",
            "Je n'arrive pas à me connecter, je ne reçois pas l'email du mot de passe.",
            "La facture de la commande {order} est fausse.",
            "Je souhaite résilier mon abonnement.",
        ),
        "detail": ("J'ai déjà redémarré l'application.", "C'est urgent.", ""),
        "bye": ("Merci.", "Cordialement.", "Bonne journée."),
        "reply": (
            "Merci de nous avoir contactés. Le remboursement de {amount} EUR pour la "
            "commande {order} est fait.",
            "Désolé, un nouveau {product} est en route.",
            "Nous vous avons envoyé un nouveau lien pour le mot de passe.",
        ),
    },
    "de": {
        "hello": ("Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,"),
        "issue": (
            "Mir wurde die Bestellung {order} doppelt berechnet, ich möchte eine Erstattung.",
            "Mein {product} kam beschädigt an.",
            "Wo ist mein Paket? Die Bestellung {order} ist immer noch in Bearbeitung.",
            "Ich kann mich nicht anmelden, die Passwort-E-Mail kommt nicht an.",
            "Die Rechnung für Bestellung {order} ist falsch.",
            "Bitte kündigen Sie mein Abonnement.",
        ),
        "detail": ("Ich habe die App schon neu gestartet.", "Es ist dringend.", ""),
        "bye": ("Danke.", "Viele Grüße.", "Mit freundlichen Grüßen."),
        "reply": (
            "Danke für Ihre Nachricht. Die Erstattung von {amount} EUR für Bestellung "
            "{order} ist veranlasst.",
            "Entschuldigung, ein neues {product} ist unterwegs.",
            "Wir haben Ihnen einen neuen Link zum Zurücksetzen des Passworts geschickt.",
        ),
    },
}

FIRST_NAMES = [
    "Ana",
    "Luis",
    "Maria",
    "Carlos",
    "Sofia",
    "Jan",
    "Emma",
    "Noah",
    "Lea",
    "Paul",
    "Chloe",
    "Lucas",
    "Ines",
    "Hugo",
    "Mia",
    "Leon",
    "Olivia",
    "Liam",
    "Aisha",
    "Omar",
    "Yuki",
    "Chen",
    "Priya",
    "Ravi",
    "Fatima",
    "Diego",
    "Lucia",
    "Mateo",
    "Elena",
    "Marco",
]
LAST_NAMES = [
    "Garcia",
    "Silva",
    "Martin",
    "Muller",
    "Dubois",
    "Rossi",
    "Smith",
    "Jones",
    "Lopez",
    "Santos",
    "Schmidt",
    "Bernard",
    "Costa",
    "Fischer",
    "Moreau",
    "Brown",
    "Taylor",
    "Perez",
    "Oliveira",
    "Weber",
]


class TextGen:
    """Cheap, seeded text generation: a few microseconds per message."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def language(self) -> str:
        return self.rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0]

    def order(self) -> str:
        return str(self.rng.randrange(1_000_000, 9_999_999))

    def _fill(self, template: str, order: str) -> str:
        if "{" not in template:
            return template
        return template.format(
            order=order,
            product=self.rng.choice(PRODUCTS),
            amount=f"{self.rng.randrange(5, 900)}.{self.rng.randrange(100):02d}",
        )

    def opening(self, lang: str, order: str) -> tuple[str, str]:
        """(subject line, first customer message) of a thread."""
        t = _T[lang]
        rng = self.rng
        issue = self._fill(rng.choice(t["issue"]), order)
        body = f"{rng.choice(t['hello'])} {issue} {rng.choice(t['detail'])} {rng.choice(t['bye'])}"
        return issue[:120], body

    def customer(self, lang: str, order: str) -> str:
        t = _T[lang]
        rng = self.rng
        if rng.random() < 0.5:
            return f"{self._fill(rng.choice(t['issue']), order)} {rng.choice(t['bye'])}"
        return f"{rng.choice(t['detail']) or rng.choice(t['bye'])} {rng.choice(t['bye'])}"

    def reply(self, lang: str, order: str) -> str:
        return self._fill(self.rng.choice(_T[lang]["reply"]), order)

    def name(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def inbound_text(self) -> str:
        lang = self.language()
        return self.opening(lang, self.order())[1]


# What the search phase asks for: common words, mid-frequency words in other languages,
# product names (rare) and order numbers (one thread) are filled in from the data.
COMMON_QUERIES = ("refund", "invoice", "password", "reembolso", "rechnung", "commande")
